using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What every <see cref="IIngestionStore"/> must do, whatever engine is behind it: one class of tests,
/// one subclass per backend (the way System.Threading.RateLimiting tests its limiters). Real time and
/// real databases; the windows are short so the limiter's waits are too.
/// </summary>
public abstract partial class StoreContractTests : IAsyncLifetime
{
    protected static readonly TimeSpan LongWindow = TimeSpan.FromMinutes(10);
    protected static readonly TimeSpan TinyWindow = TimeSpan.FromMilliseconds(1);
    protected static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private readonly List<IIngestionStore> _stores = [];

    /// <summary>A new, initialised store on this test's database, as a new process (or instance) would open it.</summary>
    protected abstract Task<IIngestionStore> CreateStoreAsync();

    protected static CancellationToken Token => TestContext.Current.CancellationToken;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await ((IAsyncDisposable)store).DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }

    protected async Task<IIngestionStore> OpenAsync()
    {
        var store = await CreateStoreAsync();
        _stores.Add(store);
        return store;
    }

    protected static async Task<Guid> EnqueueAsync(IIngestionStore store, Priority priority, params int[] ids)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var ingestion = new NewIngestion(Guid.CreateVersion7(now), priority, now, 3, ids);
        await store.EnqueueAsync(ingestion, Token);
        return ingestion.Id;
    }

    protected static Task<WindowClaim> ClaimAsync(IIngestionStore store, TimeSpan window) =>
        store.ClaimWindowAsync(DateTimeOffset.UtcNow, 3, window, Token);

    /// <summary>Claims until the limiter admits a window (it must within the deadline).</summary>
    protected static async Task<ClaimedWindow> ClaimEventuallyAsync(IIngestionStore store, TimeSpan window)
    {
        var claim = await Eventually.ReturnsAsync(() => ClaimAsync(store, window), c => c.Window is not null, Deadline, "the limiter to admit a window");
        return claim.Window!;
    }

    protected static Task CompleteAsync(IIngestionStore store, ClaimedWindow window) =>
        store.CompleteWindowAsync(window, new WindowOutcome([.. window.Items.Select(item => Succeeded(item))], DateTimeOffset.UtcNow), Token);

    protected static FetchOutcome Succeeded(WindowItem item) =>
        new(FetchState.Succeeded, null, $$"""{"id":{{item.Id}},"data":"processed"}""", false, null, item.PriorAttempts + 1, item.PriorThrottled, null);

    protected static int[] Ids(ClaimedWindow window) => [.. window.Items.Select(item => item.Id)];

    [Fact]
    public async Task IdsAheadAndQueueDepthCountWhatWillStartFirstAcrossClaimsAbandonsAndRestarts()
    {
        var store = await OpenAsync();
        var low = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4, 5);
        var mediumFirst = await EnqueueAsync(store, Priority.Medium, 6, 7, 8, 9);
        await EnqueueAsync(store, Priority.High, 10, 11);
        var mediumSecond = await EnqueueAsync(store, Priority.Medium, 12, 13, 14);

        Assert.Equal(new QueueDepth(2, 7, 5), await store.GetQueueDepthAsync(Token));
        Assert.Equal(2 + 4, (await store.GetIngestionAsync(mediumSecond, Token))!.IdsAhead);
        Assert.Equal(2 + 7, (await store.GetIngestionAsync(low, Token))!.IdsAhead);

        var window = await ClaimEventuallyAsync(store, TinyWindow); // 10, 11, 6
        Assert.Equal([10, 11, 6], Ids(window));
        Assert.Equal(new QueueDepth(0, 6, 5), await store.GetQueueDepthAsync(Token));
        Assert.Equal(3, (await store.GetIngestionAsync(mediumSecond, Token))!.IdsAhead);
        Assert.Equal(0, (await store.GetIngestionAsync(mediumFirst, Token))!.IdsAhead);
        Assert.Equal(6, (await store.GetIngestionAsync(low, Token))!.IdsAhead);

        // Handed back: 10 and 11 wait again at HIGH, 6 again ahead of the rest of its request.
        await store.AbandonWindowAsync(window, Token);
        Assert.Equal(new QueueDepth(2, 7, 5), await store.GetQueueDepthAsync(Token));
        Assert.Equal(2 + 1, (await store.GetIngestionAsync(mediumFirst, Token))!.IdsAhead);
        Assert.Equal(2 + 4, (await store.GetIngestionAsync(mediumSecond, Token))!.IdsAhead);

        // A new process (or instance) on the same database counts the same.
        var reopened = await OpenAsync();
        Assert.Equal(new QueueDepth(2, 7, 5), await reopened.GetQueueDepthAsync(Token));
        Assert.Equal(2 + 7, (await reopened.GetIngestionAsync(low, Token))!.IdsAhead);
    }

    [Fact]
    public async Task NothingIsClaimedWhenNoIdWaits()
    {
        var store = await OpenAsync();

        var claim = await ClaimAsync(store, TinyWindow);

        Assert.Null(claim.Window);
        Assert.Null(claim.RetryAfter);
    }

    [Fact]
    public async Task AClaimTakesTheNextIdsInTheGlobalOrderAcrossRequests()
    {
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Low, 1, 2);
        await EnqueueAsync(store, Priority.Medium, 3);
        await EnqueueAsync(store, Priority.High, 4);
        await EnqueueAsync(store, Priority.Medium, 5, 6);

        var first = await ClaimEventuallyAsync(store, TinyWindow);
        await CompleteAsync(store, first);
        var second = await ClaimEventuallyAsync(store, TinyWindow);

        Assert.Equal([4, 3, 5], Ids(first));
        Assert.Equal([6, 1, 2], Ids(second));
    }

    [Fact]
    public async Task NoWindowIsAdmittedWhileAnotherRuns()
    {
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var running = await ClaimEventuallyAsync(store, TinyWindow);

        // The spacing is a millisecond, so only the running window can be what refuses. A negative
        // property: it is watched for a while, not waited for.
        var deadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(300);
        while (DateTime.UtcNow < deadline)
        {
            var refused = await ClaimAsync(store, TinyWindow);
            Assert.Null(refused.Window);
            Assert.True(refused.RetryAfter > TimeSpan.Zero);
            await Task.Delay(TimeSpan.FromMilliseconds(20), Token);
        }

        await CompleteAsync(store, running);
        var next = await ClaimEventuallyAsync(store, TinyWindow);
        Assert.Equal([4], Ids(next));
    }

    [Fact]
    public async Task TheNextWindowStartsNoSoonerThanAWindowAfterTheLastStart()
    {
        // Long enough that the refusal below comes inside it even on a loaded machine.
        var window = TimeSpan.FromSeconds(1);
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var first = await ClaimEventuallyAsync(store, window);
        await CompleteAsync(store, first);

        var refused = await ClaimAsync(store, window);
        var second = await ClaimEventuallyAsync(store, window);

        Assert.Null(refused.Window);
        // Starts are stored rounded up to the millisecond, so the wait can be up to 1 ms longer than a window.
        Assert.InRange(refused.RetryAfter!.Value, TimeSpan.FromTicks(1), window + TimeSpan.FromMilliseconds(1));
        Assert.True(second.StartedAt - first.StartedAt >= window, $"started {first.StartedAt:O} then {second.StartedAt:O}");
    }

    [Fact]
    public async Task TheLimitHoldsForAnotherStoreOnTheSameDatabase()
    {
        var before = await OpenAsync();
        await EnqueueAsync(before, Priority.Medium, 1, 2, 3, 4);
        await CompleteAsync(before, await ClaimEventuallyAsync(before, LongWindow));

        var after = await OpenAsync();
        var claim = await ClaimAsync(after, LongWindow);

        Assert.Null(claim.Window);
        Assert.InRange(claim.RetryAfter!.Value, LongWindow - TimeSpan.FromSeconds(5), LongWindow + TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task CompletingAWindowStoresItsProgressForTheStatus()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.High, 7, 8, 9, 10);
        var window = await ClaimEventuallyAsync(store, TinyWindow);

        var whileRunning = await store.GetIngestionAsync(ingestion, Token);
        await CompleteAsync(store, window);
        var afterwards = await store.GetIngestionAsync(ingestion, Token);

        Assert.Equal((3, 0), (whileRunning!.Started, whileRunning.Completed));
        Assert.Equal(WindowState.Running, Assert.Single(whileRunning.Spans).State);
        Assert.Equal((3, 3), (afterwards!.Started, afterwards.Completed));
        var span = Assert.Single(afterwards.Spans);
        Assert.Equal((0, 3, WindowState.Completed), (span.FirstPosition, span.Count, span.State));
        Assert.Equal(window.StartedAt, span.StartedAt);
        Assert.True(span.FinishedAt >= span.StartedAt);
        Assert.Equal([7, 8, 9, 10], afterwards.Ids);
        Assert.Equal(Priority.High, afterwards.Priority);
        Assert.Equal(
            [ProgressStatus.Completed, ProgressStatus.YetToStart],
            StatusReport.Build(afterwards).Batches.Select(b => b.Status));
    }

    [Fact]
    public async Task AWindowIsCompletedOnceOrNotAtAll()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.Low, 1);
        var window = await ClaimEventuallyAsync(store, TinyWindow);
        await CompleteAsync(store, window);

        await Assert.ThrowsAsync<InvalidOperationException>(() => CompleteAsync(store, window));
        Assert.Equal(1, (await store.GetIngestionAsync(ingestion, Token))!.Completed);
    }

    [Fact]
    public async Task AnAbandonedWindowsIdsAreClaimedAgainAtTheirOriginalPlace()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4, 5, 6);
        var abandoned = await ClaimEventuallyAsync(store, TinyWindow);
        await store.AbandonWindowAsync(abandoned, Token);
        await EnqueueAsync(store, Priority.Low, 7);
        await EnqueueAsync(store, Priority.High, 8);

        var requeued = (await store.GetIngestionAsync(ingestion, Token))!.Requeued;
        var first = await ClaimEventuallyAsync(store, TinyWindow);
        await CompleteAsync(store, first);
        var second = await ClaimEventuallyAsync(store, TinyWindow);

        Assert.Equal([0, 1, 2], requeued);
        Assert.Equal([8, 1, 2], Ids(first));
        Assert.Equal([3, 4, 5], Ids(second));
        var log = await store.GetRecentWindowsAsync(10, Token);
        Assert.Equal([WindowState.Running, WindowState.Completed, WindowState.Abandoned], log.Select(w => w.State));
    }

    [Fact]
    public async Task EveryKindOfWriteShowsInTheNextStatusRead()
    {
        // Each step reads first, so a store that keeps reads in memory (SQLite does) holds the old
        // answer when the write comes; the read after it must show the write all the same.
        var store = await OpenAsync();
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var announced = new NewIngestion(Guid.CreateVersion7(now), Priority.Low, now, 3, [1, 2, 3, 4, 5, 6, 7]);
        Assert.Null(await store.GetIngestionAsync(announced.Id, Token));
        Assert.Null(await store.GetIngestionAsync(announced.Id, Token));

        await store.EnqueueAsync(announced, Token);
        var created = await store.GetIngestionAsync(announced.Id, Token);
        Assert.Equal((0, 0, 0L), (created!.Started, created.Completed, created.IdsAhead));

        await EnqueueAsync(store, Priority.High, 8, 9);
        Assert.Equal(2, (await store.GetIngestionAsync(announced.Id, Token))!.IdsAhead);

        var first = await ClaimEventuallyAsync(store, TinyWindow);
        var claimed = await store.GetIngestionAsync(announced.Id, Token);
        Assert.Equal([8, 9, 1], Ids(first));
        Assert.Equal((1, 0L), (claimed!.Started, claimed.IdsAhead));
        Assert.Equal(WindowState.Running, Assert.Single(claimed.Spans).State);

        await CompleteAsync(store, first);
        var completed = await store.GetIngestionAsync(announced.Id, Token);
        Assert.Equal((1, 1), (completed!.Started, completed.Completed));
        Assert.Equal(WindowState.Completed, Assert.Single(completed.Spans).State);

        var second = await ClaimEventuallyAsync(store, TinyWindow);
        Assert.Equal(4, (await store.GetIngestionAsync(announced.Id, Token))!.Started);
        await store.AbandonWindowAsync(second, Token);
        var abandoned = await store.GetIngestionAsync(announced.Id, Token);
        Assert.Equal([1, 2, 3], abandoned!.Requeued);
        Assert.Equal(WindowState.Abandoned, abandoned.Spans[^1].State);

        // Positions 1 and 2 fail for good and 3 succeeds; the upstream asks for a pause as well.
        var third = await ClaimEventuallyAsync(store, TinyWindow);
        Assert.Empty((await store.GetIngestionAsync(announced.Id, Token))!.Requeued);
        var failure = new FetchOutcome(FetchState.Failed, 404, null, false, "not found", 1, 0, null);
        await store.CompleteWindowAsync(
            third,
            new WindowOutcome([failure, failure, Succeeded(third.Items[2])], DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)),
            Token);
        var failed = await store.GetIngestionAsync(announced.Id, Token);
        Assert.Equal((4, 4), (failed!.Started, failed.Completed));
        Assert.Equal([1, 2], failed.Failed);
        Assert.NotNull(failed.PausedUntil);
        Assert.Equal(await store.GetPausedUntilAsync(Token), failed.PausedUntil);
    }

    [Fact]
    public async Task AnUnknownIngestionIsNull()
    {
        var store = await OpenAsync();

        Assert.Null(await store.GetIngestionAsync(Guid.NewGuid(), Token));
    }

    [Fact]
    public async Task TheWindowLogListsTheNewestWindowsFirstWithTheRunsTheyTook()
    {
        var store = await OpenAsync();
        var low = await EnqueueAsync(store, Priority.Low, 1, 2);
        var high = await EnqueueAsync(store, Priority.High, 3);
        var first = await ClaimEventuallyAsync(store, TinyWindow);
        await CompleteAsync(store, first);
        await EnqueueAsync(store, Priority.Medium, 4);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));

        var log = await store.GetRecentWindowsAsync(10, Token);
        var newest = await store.GetRecentWindowsAsync(1, Token);

        Assert.Equal(2, log.Count);
        Assert.Equal(log[0].Seq, Assert.Single(newest).Seq);
        Assert.True(log[0].Seq > log[1].Seq);
        Assert.Equal(
            [(high, Priority.High, 0, new[] { 3 }), (low, Priority.Low, 0, [1, 2])],
            log[1].Items.Select(i => (i.IngestionId, i.Priority, i.FirstPosition, i.Ids)));
        Assert.Equal([4], log[0].Items.SelectMany(i => i.Ids));
        Assert.All(log, w => Assert.Equal(WindowState.Completed, w.State));
    }

    [Fact]
    public async Task RecentIngestionsAreTheNewestFirstWithTheirCounters()
    {
        var store = await OpenAsync();
        var first = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4);
        var second = await EnqueueAsync(store, Priority.High, 5);
        var third = await EnqueueAsync(store, Priority.Medium, 6, 7);
        var window = await ClaimEventuallyAsync(store, TinyWindow); // 5, 6, 7
        await CompleteAsync(store, window);
        await ClaimEventuallyAsync(store, TinyWindow);              // 1, 2, 3, still running

        var recent = await store.GetRecentIngestionsAsync(10, Token);
        var newest = await store.GetRecentIngestionsAsync(2, Token);

        Assert.Equal([third, second, first], recent.Select(i => i.Id));
        Assert.Equal([third, second], newest.Select(i => i.Id));
        Assert.Equal(
            [(Priority.Medium, 2, 2, 2), (Priority.High, 1, 1, 1), (Priority.Low, 4, 3, 0)],
            recent.Select(i => (i.Priority, i.Total, i.Started, i.Completed)));
        Assert.All(recent, i => Assert.Equal(3, i.BatchSize));
        Assert.True(recent[0].CreatedAt >= recent[2].CreatedAt);
    }

    [Fact]
    public async Task ALargeRequestIsOneIngestionReadBackInOrder()
    {
        var store = await OpenAsync();
        var ids = Enumerable.Range(1, 100_000).Select(i => (int)((i * 7919L) % 1_000_000_007)).ToArray();
        var ingestion = await EnqueueAsync(store, Priority.Low, ids);

        var window = await ClaimEventuallyAsync(store, TinyWindow);
        var snapshot = await store.GetIngestionAsync(ingestion, Token);

        Assert.Equal(ids[..3], Ids(window));
        Assert.Equal(ids, snapshot!.Ids);
    }
}
