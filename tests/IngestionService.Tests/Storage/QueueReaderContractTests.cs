using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What every backend's read side (<see cref="IQueueReader"/>) must show after each kind of write: status
/// snapshots, ids ahead and queue depth, the window log, recent ingestions and results.
/// </summary>
public abstract class QueueReaderContractTests(IStoreBackend backend) : StoreContract(backend)
{
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
            new WindowOutcome([failure, failure, Succeeded(third.Items[2])], TimeSpan.FromMinutes(5)),
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
    public async Task TheWindowLogSaysWhatEachCallCameToOnceTheWindowCompletes()
    {
        var store = await OpenAsync();
        var low = await EnqueueAsync(store, Priority.Low, 1, 2);
        var high = await EnqueueAsync(store, Priority.High, 3);
        var window = await ClaimEventuallyAsync(store, TinyWindow); // 3, then 1, 2
        var running = (await store.GetRecentWindowsAsync(1, Token)).Single();
        var throttled = new FetchOutcome(FetchState.Retrying, 429, null, false, "HTTP 429 Too Many Requests", 1, 1, TimeSpan.FromSeconds(1));
        var failed = new FetchOutcome(FetchState.Failed, 404, null, false, "HTTP 404 Not Found", 1, 0, null);
        await store.CompleteWindowAsync(window, new WindowOutcome([.. window.Items.Select(item => item.Id switch
        {
            1 => throttled,
            2 => failed,
            _ => Succeeded(item),
        })], TimeSpan.FromSeconds(1)), Token);
        var completed = (await store.GetRecentWindowsAsync(1, Token)).Single();
        var retry = await ClaimEventuallyAsync(store, TinyWindow);                 // 1 again, after the pause
        await store.CompleteWindowAsync(retry, new WindowOutcome([Retry(retry.Items.Single(), TimeSpan.Zero)]), Token);
        var retried = (await store.GetRecentWindowsAsync(1, Token)).Single();

        Assert.All(running.Items, item => Assert.Null(item.Marks));
        Assert.Equal(
            [(high, new[] { CallMark.Succeeded }), (low, [CallMark.Throttled, CallMark.Failed])],
            completed.Items.Select(item => (item.IngestionId, item.Marks!.ToArray())));
        Assert.Equal([CallMark.Retrying], retried.Items.Single().Marks);
    }

    [Fact]
    public async Task RecentIngestionsAreFilteredByStatusPriorityAndFailures()
    {
        var store = await OpenAsync();
        var waiting = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4);
        var done = await EnqueueAsync(store, Priority.High, 5);
        var failing = await EnqueueAsync(store, Priority.High, 6, 7);
        var window = await ClaimEventuallyAsync(store, TinyWindow); // 5, 6, 7
        await store.CompleteWindowAsync(window, new WindowOutcome([.. window.Items.Select(item => item.Id == 7
            ? new FetchOutcome(FetchState.Failed, 500, null, false, "HTTP 500", 1, 0, null)
            : Succeeded(item))]), Token);
        var running = await EnqueueAsync(store, Priority.Medium, 8);
        await ClaimEventuallyAsync(store, TinyWindow);              // 8, then 1 and 2: both started

        async Task<Guid[]> ListAsync(IngestionFilter filter, int limit = 10) =>
            [.. (await store.GetRecentIngestionsAsync(limit, filter, Token)).Select(i => i.Id)];

        Assert.Equal([running, failing, done, waiting], await ListAsync(IngestionFilter.None));
        Assert.Equal([failing, done], await ListAsync(new(Status: ProgressStatus.Completed)));
        Assert.Equal([running, waiting], await ListAsync(new(Status: ProgressStatus.Triggered)));
        Assert.Equal([failing, done], await ListAsync(new(Priority: Priority.High)));
        Assert.Equal([failing], await ListAsync(new(FailedOnly: true)));
        Assert.Equal([failing], await ListAsync(new(Priority.High, ProgressStatus.Completed, FailedOnly: true)));
        Assert.Empty(await ListAsync(new(Priority.Low, ProgressStatus.Completed)));
        Assert.Equal([failing], await ListAsync(new(Status: ProgressStatus.Completed), limit: 1));
    }

    [Fact]
    public async Task AnIngestionNobodyStartedIsYetToStartInTheList()
    {
        var store = await OpenAsync();
        var waiting = await EnqueueAsync(store, Priority.Low, 1);

        Assert.Equal([waiting], (await store.GetRecentIngestionsAsync(5, new IngestionFilter(Status: ProgressStatus.YetToStart), Token)).Select(i => i.Id));
        Assert.Empty(await store.GetRecentIngestionsAsync(5, new IngestionFilter(Status: ProgressStatus.Triggered), Token));
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

    [Fact]
    public async Task AFailedIdIsFinalCountedAsCompletedAndListedForTheStatus()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.High, 5, 6);
        var window = await ClaimEventuallyAsync(store, TinyWindow);
        await store.CompleteWindowAsync(window, new WindowOutcome(
            [Succeeded(window.Items[0]), new FetchOutcome(FetchState.Failed, 404, "gone", false, "HTTP 404 Not Found", 1, 0, null)]), Token);

        var snapshot = await store.GetIngestionAsync(ingestion, Token);
        var summary = (await store.GetRecentIngestionsAsync(1, Token)).Single();
        var claim = await ClaimAsync(store, TinyWindow);
        var failed = (await store.GetResultsAsync(ingestion, -1, 10, Token))!.Single(r => r.Id == 6);

        Assert.Equal((2, 2), (snapshot!.Started, snapshot.Completed));
        Assert.Equal([1], snapshot.Failed);
        Assert.Empty(snapshot.Requeued);
        Assert.Equal((2, 1), (summary.Completed, summary.Failed));
        Assert.Null(claim.Window);
        Assert.Equal((FetchState.Failed, 404, "gone", "HTTP 404 Not Found"), (failed.State, failed.HttpStatus, failed.Body, failed.Error));
        var status = StatusReport.Build(snapshot);
        Assert.Equal((ProgressStatus.Completed, 1, 1), (status.Status, status.FailedIds, status.Batches.Single().FailedIds));
    }

    [Fact]
    public async Task ResultsArePagedByPositionAndAnUnknownIngestionHasNone()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.Medium, 10, 20, 30, 40, 50);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));

        var first = await store.GetResultsAsync(ingestion, -1, 2, Token);
        var second = await store.GetResultsAsync(ingestion, first![^1].Position, 2, Token);
        var last = await store.GetResultsAsync(ingestion, second![^1].Position, 2, Token);
        var past = await store.GetResultsAsync(ingestion, 4, 2, Token);

        Assert.Equal([(0, 10), (1, 20)], first.Select(r => (r.Position, r.Id)));
        Assert.Equal([(2, 30), (3, 40)], second.Select(r => (r.Position, r.Id)));
        Assert.Equal([(4, 50)], last!.Select(r => (r.Position, r.Id)));
        Assert.Empty(past!);
        Assert.All(first.Concat(second).Concat(last!), r => Assert.Equal((FetchState.Succeeded, 1, false), (r.State, r.Attempts, r.BodyTruncated)));
        Assert.Equal("""{"id":10,"data":"processed"}""", first[0].Body);
        Assert.Null(await store.GetResultsAsync(Guid.NewGuid(), -1, 10, Token));
    }
}
