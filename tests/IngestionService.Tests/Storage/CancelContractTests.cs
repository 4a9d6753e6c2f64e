using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What every backend does with cancelled and expired work: the ids leave the queue in one transaction,
/// the next window packs what follows them, the ids ahead, the depth and the status count them out, and
/// a new process (or instance) on the same database sees the same.
/// </summary>
public abstract class CancelContractTests(IStoreBackend backend) : StoreContract(backend)
{
    [Fact]
    public async Task ACancelTakesTheUnstartedIdsOutAndTheNextWindowPacksTheIdsAfterThem()
    {
        var store = await OpenAsync();
        var first = await EnqueueAsync(store, Priority.Medium, 1, 2);
        var cancelled = await EnqueueAsync(store, Priority.Medium, 3, 4, 5, 6);
        await EnqueueAsync(store, Priority.Medium, 7, 8);
        var window = await ClaimEventuallyAsync(store, TinyWindow); // 1, 2, 3: id 3 is in flight

        Assert.Equal(CancelOutcome.Cancelled, await store.CancelAsync(cancelled, Token));
        Assert.Equal(CancelOutcome.AlreadyCancelled, await store.CancelAsync(cancelled, Token));
        Assert.Equal(CancelOutcome.NothingToCancel, await store.CancelAsync(first, Token));
        Assert.Equal(CancelOutcome.Unknown, await store.CancelAsync(Guid.CreateVersion7(), Token));
        var whileInFlight = StatusReport.Build((await store.GetIngestionAsync(cancelled, Token))!);
        await CompleteAsync(store, window);
        var next = await ClaimEventuallyAsync(store, TinyWindow);
        await CompleteAsync(store, next);
        var done = StatusReport.Build((await store.GetIngestionAsync(cancelled, Token))!);

        Assert.Equal([1, 2, 3], Ids(window));
        Assert.Equal([7, 8], Ids(next));
        Assert.Equal((ProgressStatus.Triggered, 1, 3, CancelReason.Requested), (whileInFlight.Status, whileInFlight.StartedIds, whileInFlight.CancelledIds, whileInFlight.CancelReason));
        Assert.Null(whileInFlight.IdsAhead);
        Assert.Equal(ProgressStatus.Cancelled, done.Status);
        Assert.Equal((ProgressStatus.Completed, 2), (done.Batches[0].Status, done.Batches[0].CancelledIds)); // [3, 4, 5]: 3 ran
        Assert.Equal((ProgressStatus.Cancelled, 1, null), (done.Batches[1].Status, done.Batches[1].CancelledIds, done.Batches[1].TriggeredAt)); // [6]
        Assert.Equal(new QueueDepth(0, 0, 0), await store.GetQueueDepthAsync(Token));
        Assert.Null((await ClaimAsync(store, TinyWindow)).Window);
    }

    [Fact]
    public async Task IdsAheadAndDepthCountNeitherCancelledIdsAheadNorBehindAndARestartCountsTheSame()
    {
        var store = await OpenAsync();
        var frontier = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4, 5);
        var between = await EnqueueAsync(store, Priority.Low, 6, 7);
        var cancelled = await EnqueueAsync(store, Priority.Low, 8, 9, 10);
        var last = await EnqueueAsync(store, Priority.Low, 11);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow)); // 1, 2, 3

        await store.CancelAsync(cancelled, Token); // behind `between`, ahead of `last`

        Assert.Equal(new QueueDepth(0, 0, 2 + 2 + 1), await store.GetQueueDepthAsync(Token));
        Assert.Equal(2, (await store.GetIngestionAsync(between, Token))!.IdsAhead);   // 4, 5
        Assert.Equal(2 + 2, (await store.GetIngestionAsync(last, Token))!.IdsAhead);  // 4, 5, 6, 7
        var reopened = await OpenAsync();
        Assert.Equal(new QueueDepth(0, 0, 5), await reopened.GetQueueDepthAsync(Token));
        Assert.Equal(2, (await reopened.GetIngestionAsync(between, Token))!.IdsAhead);
        Assert.Equal(4, (await reopened.GetIngestionAsync(last, Token))!.IdsAhead);

        // The ingestion in progress: its waiting tail goes, its started ids stay.
        Assert.Equal(CancelOutcome.Cancelled, await reopened.CancelAsync(frontier, Token));
        Assert.Equal(new QueueDepth(0, 0, 3), await reopened.GetQueueDepthAsync(Token));
        Assert.Equal(0, (await reopened.GetIngestionAsync(between, Token))!.IdsAhead);
        Assert.Equal(2, (await reopened.GetIngestionAsync(last, Token))!.IdsAhead);
        var next = await ClaimEventuallyAsync(reopened, TinyWindow);
        Assert.Equal([6, 7, 11], Ids(next));
    }

    [Fact]
    public async Task AnAdmissionExpiresTheWaitingIdsWhoseNotAfterHasPassedBeforeItTakesAny()
    {
        var store = await OpenAsync();
        var soon = Ms(DateTimeOffset.UtcNow.AddMilliseconds(100)); // stored times are whole milliseconds
        var expiring = await EnqueueAsync(store, Priority.High, soon, 1, 2);
        var later = Ms(DateTimeOffset.UtcNow.AddHours(1));
        var keeping = await EnqueueAsync(store, Priority.Low, later, 3);
        await Eventually.HoldsAsync(() => DateTimeOffset.UtcNow > soon.AddMilliseconds(5), Deadline, "the not_after to pass");

        var claim = await Eventually.ReturnsAsync(() => ClaimAsync(store, TinyWindow), c => c.Window is not null, Deadline, "an admission");
        var expired = StatusReport.Build((await store.GetIngestionAsync(expiring, Token))!);
        var kept = StatusReport.Build((await store.GetIngestionAsync(keeping, Token))!);

        Assert.Equal(2, claim.Expired);
        Assert.Equal([3], Ids(claim.Window!));
        Assert.Equal((ProgressStatus.Cancelled, 2, CancelReason.Expired, 0), (expired.Status, expired.CancelledIds, expired.CancelReason, expired.StartedIds));
        Assert.All(expired.Batches, b => Assert.Equal(ProgressStatus.Cancelled, b.Status));
        Assert.Equal(soon.UtcDateTime, expired.NotAfter);
        Assert.True(expired.CancelledAt >= expired.NotAfter, $"expired at {expired.CancelledAt:O}, before its not_after {expired.NotAfter:O}");
        Assert.Equal((later.UtcDateTime, (CancelReason?)null), (kept.NotAfter, kept.CancelReason));
        Assert.Equal(CancelOutcome.AlreadyCancelled, await store.CancelAsync(expiring, Token));
    }

    [Fact]
    public async Task CancelledAndExpiredIngestionsAreListedAsCancelledWithTheirCount()
    {
        var store = await OpenAsync();
        var cancelled = await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var running = await EnqueueAsync(store, Priority.Medium, 5);
        await store.CancelAsync(cancelled, Token);

        var all = await store.GetRecentIngestionsAsync(10, IngestionFilter.None, Token);
        var onlyCancelled = await store.GetRecentIngestionsAsync(10, new IngestionFilter(Status: ProgressStatus.Cancelled), Token);
        var onlyWaiting = await store.GetRecentIngestionsAsync(10, new IngestionFilter(Status: ProgressStatus.YetToStart), Token);

        var summary = all.Single(i => i.Id == cancelled);
        Assert.Equal((0, 4, ProgressStatus.Cancelled), (summary.Started, summary.Cancelled, StatusReport.Overall(summary)));
        Assert.Equal([cancelled], onlyCancelled.Select(i => i.Id));
        Assert.Equal([running], onlyWaiting.Select(i => i.Id));
    }

    private static DateTimeOffset Ms(DateTimeOffset time) => DateTimeOffset.FromUnixTimeMilliseconds(time.ToUnixTimeMilliseconds());
}

/// <summary>Cancel and expiry on the embedded SQLite store.</summary>
public sealed class SqliteCancelContractTests() : CancelContractTests(new SqliteBackend());

/// <summary>Cancel and expiry on PostgreSQL.</summary>
public sealed class PostgresCancelContractTests() : CancelContractTests(new PostgresBackend());
