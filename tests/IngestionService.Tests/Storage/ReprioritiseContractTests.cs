using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What every backend does when an ingestion moves to another priority: its waiting ids take the place a
/// request created at the same time would have there, the ids ahead and the depth follow at once, and a
/// new process (or instance) on the same database counts the same.
/// </summary>
public abstract class ReprioritiseContractTests(IStoreBackend backend) : StoreContract(backend)
{
    [Fact]
    public async Task ALowRequestMovedToHighOvertakesWaitingMediumWork()
    {
        var store = await OpenAsync();
        var medium = await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4, 5);
        var low = await EnqueueAsync(store, Priority.Low, 6, 7);
        var later = await EnqueueAsync(store, Priority.Medium, 8);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow)); // 1, 2, 3

        Assert.Equal(ReprioritiseOutcome.Moved, await store.ReprioritiseAsync(low, Priority.High, Token));
        Assert.Equal(ReprioritiseOutcome.Unchanged, await store.ReprioritiseAsync(low, Priority.High, Token));
        Assert.Equal(ReprioritiseOutcome.Unknown, await store.ReprioritiseAsync(Guid.CreateVersion7(), Priority.High, Token));

        Assert.Equal(new QueueDepth(2, 3, 0), await store.GetQueueDepthAsync(Token));
        Assert.Equal((Priority.High, 0L), await PlaceAsync(store, low));
        Assert.Equal((Priority.Medium, 2L), await PlaceAsync(store, medium));     // 6, 7 now start before 4
        Assert.Equal((Priority.Medium, 2L + 2), await PlaceAsync(store, later));  // 6, 7, 4, 5
        var reopened = await OpenAsync();
        Assert.Equal(new QueueDepth(2, 3, 0), await reopened.GetQueueDepthAsync(Token));
        Assert.Equal((Priority.Medium, 4L), await PlaceAsync(reopened, later));

        var next = await ClaimEventuallyAsync(reopened, TinyWindow);
        Assert.Equal([6, 7, 4], Ids(next));
        Assert.Equal(ReprioritiseOutcome.NothingWaits, await reopened.ReprioritiseAsync(low, Priority.Low, Token));
    }

    [Fact]
    public async Task AnIngestionMovedAheadOfIdsAlreadyStartedThereIsCountedAheadOfTheRest()
    {
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4, 5);
        var moved = await EnqueueAsync(store, Priority.Low, 10, 11);
        var frontier = await EnqueueAsync(store, Priority.Medium, 20, 21, 22);
        var lowBehind = await EnqueueAsync(store, Priority.Low, 30);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow)); // 1, 2, 3
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow)); // 4, 5, 20: `frontier` has started

        Assert.Equal(ReprioritiseOutcome.Moved, await store.ReprioritiseAsync(moved, Priority.Medium, Token));

        // Created before `frontier`, the moved ids go before its unstarted ones, though 20 has started.
        Assert.Equal((Priority.Medium, 0L), await PlaceAsync(store, moved));
        Assert.Equal((Priority.Medium, 2L), await PlaceAsync(store, frontier));
        Assert.Equal((Priority.Low, 2L + 2), await PlaceAsync(store, lowBehind));
        var newcomer = await EnqueueAsync(store, Priority.Medium, 40);
        Assert.Equal((Priority.Medium, 4L), await PlaceAsync(store, newcomer));
        Assert.Equal(new QueueDepth(0, 5, 1), await store.GetQueueDepthAsync(Token));

        var next = await ClaimEventuallyAsync(store, TinyWindow);
        Assert.Equal([10, 11, 21], Ids(next));
        await CompleteAsync(store, next);
        Assert.Equal((Priority.Medium, 1L), await PlaceAsync(store, newcomer)); // 22
        var reopened = await OpenAsync();
        Assert.Equal((Priority.Medium, 1L), await PlaceAsync(reopened, newcomer));
        Assert.Equal((Priority.Low, 2L), await PlaceAsync(reopened, lowBehind));
    }

    [Fact]
    public async Task IdsHandedBackByAWindowOfAMovedIngestionWaitAndAreCountedAtItsNewPriority()
    {
        var store = await OpenAsync();
        var moved = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4, 5, 6);
        var first = await ClaimEventuallyAsync(store, TinyWindow); // 1, 2, 3 in flight while it moves

        await store.ReprioritiseAsync(moved, Priority.High, Token);
        await store.CompleteWindowAsync(first, new WindowOutcome([Retry(first.Items[0], TimeSpan.Zero), Succeeded(first.Items[1]), Succeeded(first.Items[2])]), Token);
        var afterRetry = await store.GetQueueDepthAsync(Token);
        await WaitUntilDueAsync(); // the retry is due from the finish, rounded up to the next millisecond
        var second = await ClaimEventuallyAsync(store, TinyWindow); // 1 again, 4, 5
        await store.AbandonWindowAsync(second, Token);
        var afterHandBack = await store.GetQueueDepthAsync(Token);

        Assert.Equal(new QueueDepth(1 + 3, 0, 0), afterRetry);
        Assert.Equal([1, 4, 5], Ids(second));
        Assert.Equal(new QueueDepth(4, 0, 0), afterHandBack);

        // The window log keeps the priority each window took the ids at.
        Assert.Equal([Priority.High, Priority.Low], (await store.GetRecentWindowsAsync(2, Token)).Select(w => w.Items.Select(item => item.Priority).Distinct().Single()));
        Assert.Equal(new QueueDepth(4, 0, 0), await (await OpenAsync()).GetQueueDepthAsync(Token));
    }

    private static async Task<(Priority Priority, long IdsAhead)> PlaceAsync(StoreUnderTest store, Guid ingestion)
    {
        var snapshot = (await store.GetIngestionAsync(ingestion, Token))!;
        return (snapshot.Priority, snapshot.IdsAhead);
    }
}

/// <summary>Moving ingestions between priorities on the embedded SQLite store.</summary>
public sealed class SqliteReprioritiseContractTests() : ReprioritiseContractTests(new SqliteBackend());

/// <summary>Moving ingestions between priorities on PostgreSQL.</summary>
public sealed class PostgresReprioritiseContractTests() : ReprioritiseContractTests(new PostgresBackend());
