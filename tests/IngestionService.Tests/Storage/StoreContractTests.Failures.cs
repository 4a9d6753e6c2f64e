using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>The store's side of upstream failures and client retries: retry delays, final failures, the pause, results, idempotency keys.</summary>
public abstract partial class StoreContractTests
{
    [Fact]
    public async Task AnIdToRetryWaitsForItsDelayThenComesBackAtItsPlaceWithItsAttemptsCounted()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var first = await ClaimEventuallyAsync(store, TinyWindow);
        await store.CompleteWindowAsync(first, new WindowOutcome(
            [Succeeded(first.Items[0]), Retry(first.Items[1], TimeSpan.FromSeconds(1.5)), Succeeded(first.Items[2])],
            DateTimeOffset.UtcNow), Token);

        var waiting = await store.GetIngestionAsync(ingestion, Token);
        var second = await ClaimEventuallyAsync(store, TinyWindow);
        await CompleteAsync(store, second);
        var nothingDue = await Eventually.ReturnsAsync(() => ClaimAsync(store, TinyWindow), c => c.RetryAfter is null, Deadline, "the limiter to stop refusing");
        var third = await ClaimEventuallyAsync(store, TinyWindow);
        await CompleteAsync(store, third);

        Assert.Equal((3, 2), (waiting!.Started, waiting.Completed));
        Assert.Equal([1], waiting.Requeued);
        Assert.Equal([4], Ids(second));
        Assert.Null(nothingDue.Window);
        Assert.Null(nothingDue.RetryAfter);
        Assert.InRange(nothingDue.NextDueIn!.Value, TimeSpan.FromTicks(1), TimeSpan.FromSeconds(1.5));
        Assert.Equal([2], Ids(third));
        Assert.Equal((1, 0), (third.Items[0].PriorAttempts, third.Items[0].PriorThrottled));
        Assert.True(third.StartedAt - first.StartedAt >= TimeSpan.FromSeconds(1.5), $"retried at {third.StartedAt:O}, first window at {first.StartedAt:O}");

        var done = await store.GetIngestionAsync(ingestion, Token);
        Assert.Equal((4, 4, 0), (done!.Started, done.Completed, done.Failed.Count));
        var result = Assert.Single((await store.GetResultsAsync(ingestion, 0, 1, Token))!);
        Assert.Equal((1, 2, FetchState.Succeeded, 2, (string?)null, (DateTimeOffset?)null), (result.Position, result.Id, result.State, result.Attempts, result.Error, result.NextAttemptAt));
    }

    [Fact]
    public async Task AnIdWaitingForARetryIsStillThereForAStoreOpenedLater()
    {
        var before = await OpenAsync();
        var ingestion = await EnqueueAsync(before, Priority.Low, 1, 2, 3);
        var window = await ClaimEventuallyAsync(before, TinyWindow);
        await before.CompleteWindowAsync(window, new WindowOutcome([.. window.Items.Select(item => Retry(item, TimeSpan.FromMilliseconds(300)))], DateTimeOffset.UtcNow), Token);

        var after = await OpenAsync();
        var waiting = (await after.GetQueueDepthAsync(Token)).Low;
        var retried = await ClaimEventuallyAsync(after, TinyWindow);

        Assert.Equal([1, 2, 3], Ids(retried));
        Assert.All(retried.Items, item => Assert.Equal(1, item.PriorAttempts));
        Assert.Equal(3, waiting);
        Assert.Equal(0, (await after.GetQueueDepthAsync(Token)).Low);
        Assert.Equal([0, 1, 2], (await after.GetResultsAsync(ingestion, -1, 10, Token))!.Where(r => r.State == FetchState.Retrying).Select(r => r.Position));
    }

    [Fact]
    public async Task AFailedIdIsFinalCountedAsCompletedAndListedForTheStatus()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.High, 5, 6);
        var window = await ClaimEventuallyAsync(store, TinyWindow);
        await store.CompleteWindowAsync(window, new WindowOutcome(
            [Succeeded(window.Items[0]), new FetchOutcome(FetchState.Failed, 404, "gone", false, "HTTP 404 Not Found", 1, 0, null)],
            DateTimeOffset.UtcNow), Token);

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
    public async Task APauseHoldsBackEveryWindowForEveryStoreOnTheDatabaseUntilItEnds()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4);
        var window = await ClaimEventuallyAsync(store, TinyWindow);
        var throttled = new FetchOutcome(FetchState.Retrying, 429, null, false, "HTTP 429 Too Many Requests", 1, 1, TimeSpan.FromSeconds(2));
        await store.CompleteWindowAsync(window, new WindowOutcome([Succeeded(window.Items[0]), throttled, Succeeded(window.Items[2])], DateTimeOffset.UtcNow, TimeSpan.FromSeconds(2)), Token);

        var other = await OpenAsync();
        var refused = await ClaimAsync(other, TinyWindow);
        var pausedUntil = await other.GetPausedUntilAsync(Token);
        var log = (await store.GetRecentWindowsAsync(1, Token)).Single();
        var snapshot = await store.GetIngestionAsync(ingestion, Token);
        var resumed = await ClaimEventuallyAsync(other, TinyWindow);

        Assert.Null(refused.Window);
        Assert.InRange(refused.RetryAfter!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2.01));
        Assert.NotNull(pausedUntil);
        Assert.InRange(pausedUntil.Value - log.FinishedAt!.Value, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2.001));
        Assert.Equal(pausedUntil, log.PausedUntil);
        Assert.Equal(pausedUntil, snapshot!.PausedUntil);
        Assert.True(resumed.StartedAt >= pausedUntil, $"a window started at {resumed.StartedAt:O}, during the pause until {pausedUntil:O}");
        Assert.Equal([2, 4], Ids(resumed));
        Assert.Equal((1, 1), (resumed.Items[0].PriorAttempts, resumed.Items[0].PriorThrottled));
    }

    [Fact]
    public async Task SpacedFromTheFinishTheLimiterCountsTheWindowFromItsLastAnswer()
    {
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var window = TimeSpan.FromSeconds(2);
        var first = await ClaimEventuallyAsync(store, window);
        await Task.Delay(TimeSpan.FromSeconds(1), Token); // the calls take a second
        await CompleteAsync(store, first);

        var logged = (await store.GetRecentWindowsAsync(1, Token)).Single();
        var asked = DateTimeOffset.UtcNow;
        var fromStart = await ClaimAsync(store, window);
        var fromFinish = await store.ClaimWindowAsync(DateTimeOffset.UtcNow, 3, new WindowSpacing(window, FromFinish: true), Token);
        var answered = DateTimeOffset.UtcNow;

        // Bounded by the clock around the two claims, so a slow machine cannot move the figures out of range.
        var slack = TimeSpan.FromMilliseconds(2);
        Assert.InRange(fromStart.RetryAfter!.Value, logged.StartedAt + window - answered - slack, logged.StartedAt + window - asked + slack);
        Assert.InRange(fromFinish.RetryAfter!.Value, logged.FinishedAt!.Value + window - answered - slack, logged.FinishedAt.Value + window - asked + slack);
        Assert.True(fromFinish.RetryAfter > fromStart.RetryAfter, "the finish came a second after the start, so its spacing ends later");
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

    [Fact]
    public async Task AnIdempotencyKeyAnswersItsIngestionForTheSameRequestAndAConflictForAnother()
    {
        var store = await OpenAsync();
        var created = await EnqueueWithKeyAsync(store, "key-1", Priority.High, [1, 2], TimeSpan.FromHours(1));
        var replayed = await EnqueueWithKeyAsync(store, "key-1", Priority.High, [1, 2], TimeSpan.FromHours(1));
        var conflict = await EnqueueWithKeyAsync(store, "key-1", Priority.Low, [1, 2], TimeSpan.FromHours(1));
        var otherKey = await EnqueueWithKeyAsync(store, "key-2", Priority.High, [1, 2], TimeSpan.FromHours(1));

        Assert.Equal(EnqueueOutcome.Created, created.Outcome);
        Assert.Equal((created.IngestionId, EnqueueOutcome.Replayed), (replayed.IngestionId, replayed.Outcome));
        Assert.Equal((created.IngestionId, EnqueueOutcome.KeyConflict), (conflict.IngestionId, conflict.Outcome));
        Assert.Equal(EnqueueOutcome.Created, otherKey.Outcome);
        Assert.NotEqual(created.IngestionId, otherKey.IngestionId);
        Assert.Equal([otherKey.IngestionId, created.IngestionId], (await store.GetRecentIngestionsAsync(10, Token)).Select(i => i.Id));
        Assert.Equal(4, (await store.GetQueueDepthAsync(Token)).High);
    }

    [Fact]
    public async Task AnExpiredIdempotencyKeyIsForgotten()
    {
        var store = await OpenAsync();
        var first = await EnqueueWithKeyAsync(store, "short-lived", Priority.Medium, [7], TimeSpan.FromMilliseconds(-1));
        var second = await EnqueueWithKeyAsync(store, "short-lived", Priority.Medium, [8], TimeSpan.FromHours(1));
        var third = await EnqueueWithKeyAsync(store, "short-lived", Priority.Medium, [8], TimeSpan.FromHours(1));

        Assert.Equal((EnqueueOutcome.Created, EnqueueOutcome.Created), (first.Outcome, second.Outcome));
        Assert.NotEqual(first.IngestionId, second.IngestionId);
        Assert.Equal((second.IngestionId, EnqueueOutcome.Replayed), (third.IngestionId, third.Outcome));
    }

    [Fact]
    public async Task ConcurrentRequestsWithOneKeyCreateOneIngestion()
    {
        var store = await OpenAsync();
        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Task.Run(() => EnqueueWithKeyAsync(store, "burst", Priority.Low, [1, 2, 3], TimeSpan.FromHours(1)))));

        var created = Assert.Single(results, r => r.Outcome == EnqueueOutcome.Created);
        Assert.All(results, r => Assert.Equal(created.IngestionId, r.IngestionId));
        Assert.Single(await store.GetRecentIngestionsAsync(10, Token));
        Assert.Equal(3, (await store.GetQueueDepthAsync(Token)).Low);
    }

    protected static FetchOutcome Retry(WindowItem item, TimeSpan after) =>
        new(FetchState.Retrying, 500, "oops", false, "HTTP 500 Internal Server Error", item.PriorAttempts + 1, item.PriorThrottled, after);

    private static Task<EnqueueResult> EnqueueWithKeyAsync(IIngestionStore store, string key, Priority priority, int[] ids, TimeSpan lifetime)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var idempotency = new IdempotencyKey(key, IngestionSubmitter.RequestHash(priority, ids), now + lifetime);
        return store.EnqueueAsync(new NewIngestion(Guid.CreateVersion7(now), priority, now, 3, ids, idempotency), Token);
    }
}
