using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What every backend's write path (<see cref="IQueueStore"/>) must do: the limiter, the global order,
/// windows completed once or handed back, retry delays, the pause, and idempotency keys.
/// </summary>
public abstract class QueueStoreContractTests(IStoreBackend backend) : StoreContract(backend)
{
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
        var window = TimeSpan.FromSeconds(1);
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var first = await ClaimEventuallyAsync(store, window);
        await CompleteAsync(store, first);

        var refused = await ClaimAsync(store, window);
        // A machine that stalled past the window's end may rightly be admitted: then that window is the
        // second, and the spacing check below holds it to the rule.
        var second = refused.Window ?? await ClaimEventuallyAsync(store, window);

        if (refused.Window is null)
        {
            // Starts are stored rounded up to the millisecond, so the wait can be up to 1 ms longer than a window.
            Assert.InRange(refused.RetryAfter!.Value, TimeSpan.FromTicks(1), window + TimeSpan.FromMilliseconds(1));
        }

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
    public async Task AnIdToRetryWaitsForItsDelayThenComesBackAtItsPlaceWithItsAttemptsCounted()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var first = await ClaimEventuallyAsync(store, TinyWindow);
        await store.CompleteWindowAsync(first, new WindowOutcome(
            [Succeeded(first.Items[0]), Retry(first.Items[1], TimeSpan.FromSeconds(1.5)), Succeeded(first.Items[2])]), Token);

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
        await before.CompleteWindowAsync(window, new WindowOutcome([.. window.Items.Select(item => Retry(item, TimeSpan.FromMilliseconds(300)))]), Token);

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
    public async Task APauseHoldsBackEveryWindowForEveryStoreOnTheDatabaseUntilItEnds()
    {
        // Long enough that a second store (on SQLite, a new process, opened after the pause began) opens within it
        // on a loaded machine.
        var pause = TimeSpan.FromSeconds(5);
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4);
        var window = await ClaimEventuallyAsync(store, TinyWindow);
        var throttled = new FetchOutcome(FetchState.Retrying, 429, null, false, "HTTP 429 Too Many Requests", 1, 1, pause);
        await store.CompleteWindowAsync(window, new WindowOutcome([Succeeded(window.Items[0]), throttled, Succeeded(window.Items[2])], pause), Token);

        var other = await OpenAsync();
        var asked = DateTimeOffset.UtcNow;
        var refused = await ClaimAsync(other, TinyWindow);
        var answered = DateTimeOffset.UtcNow;
        var pausedUntil = await other.GetPausedUntilAsync(Token);
        var log = (await store.GetRecentWindowsAsync(1, Token)).Single();
        var snapshot = await store.GetIngestionAsync(ingestion, Token);
        var resumed = await ClaimEventuallyAsync(other, TinyWindow);

        Assert.Null(refused.Window);
        Assert.NotNull(pausedUntil);

        // Bounded by the clock around the claim, so a slow start of the second store cannot move it out of range.
        var slack = TimeSpan.FromMilliseconds(2);
        Assert.InRange(refused.RetryAfter!.Value, pausedUntil.Value - answered - slack, pausedUntil.Value - asked + slack);
        Assert.InRange(refused.RetryAfter.Value, TimeSpan.FromTicks(1), pause + TimeSpan.FromMilliseconds(10));
        Assert.InRange(pausedUntil.Value - log.FinishedAt!.Value, pause, pause + TimeSpan.FromMilliseconds(1));
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
        var window = TimeSpan.FromSeconds(10); // long enough that both claims below still fall inside it on a loaded machine
        var first = await ClaimEventuallyAsync(store, window);
        await Task.Delay(TimeSpan.FromSeconds(1), Token); // the calls take a second
        await CompleteAsync(store, first);

        var logged = (await store.GetRecentWindowsAsync(1, Token)).Single();
        var asked = DateTimeOffset.UtcNow;
        var fromStart = await ClaimAsync(store, window);
        var fromFinish = await store.ClaimWindowAsync(3, new WindowSpacing(window, FromFinish: true), Token);
        var answered = DateTimeOffset.UtcNow;

        // Bounded by the clock around the two claims, so a slow machine cannot move the figures out of range.
        var slack = TimeSpan.FromMilliseconds(2);
        Assert.InRange(fromStart.RetryAfter!.Value, logged.StartedAt + window - answered - slack, logged.StartedAt + window - asked + slack);
        Assert.InRange(fromFinish.RetryAfter!.Value, logged.FinishedAt!.Value + window - answered - slack, logged.FinishedAt.Value + window - asked + slack);
        Assert.True(fromFinish.RetryAfter > fromStart.RetryAfter, "the finish came a second after the start, so its spacing ends later");
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

    [Fact]
    public async Task APausedQueueAdmitsNoWindowUntilResumedAndThePauseOutlivesAReopen()
    {
        var store = await OpenAsync();
        var ingestion = await EnqueueAsync(store, Priority.High, 1, 2, 3, 4);
        var before = DateTimeOffset.UtcNow.AddMilliseconds(-1);

        var paused = await store.PauseQueueAsync("downstream maintenance", Token);
        var claim = await ClaimAsync(store, TinyWindow);

        Assert.Equal("downstream maintenance", paused.Reason);
        Assert.InRange(paused.PausedAt, before, DateTimeOffset.UtcNow.AddSeconds(1));
        Assert.Equal((null, null), (claim.Window, claim.RetryAfter));
        Assert.Equal(paused, await store.GetQueuePauseAsync(Token));
        Assert.True((await store.GetIngestionAsync(ingestion, Token))!.QueuePaused);
        Assert.Equal(4, (await store.GetQueueDepthAsync(Token)).High); // submissions still count as waiting

        // Another process (or instance) on the same database: still paused, and a second pause keeps the first's start and reason.
        var reopened = await OpenAsync();
        Assert.Null((await ClaimAsync(reopened, TinyWindow)).Window);
        Assert.Equal(paused, await reopened.PauseQueueAsync(null, Token));
        var renamed = await reopened.PauseQueueAsync("still down", Token);
        Assert.Equal((paused.PausedAt, "still down"), (renamed.PausedAt, renamed.Reason));

        Assert.True(await reopened.ResumeQueueAsync(Token));
        Assert.False(await reopened.ResumeQueueAsync(Token));
        Assert.Null(await reopened.GetQueuePauseAsync(Token));
        Assert.False((await reopened.GetIngestionAsync(ingestion, Token))!.QueuePaused);
        var resumed = await ClaimEventuallyAsync(reopened, TinyWindow);
        Assert.Equal([1, 2, 3], Ids(resumed));
    }

    [Fact]
    public async Task AWindowInFlightWhenThePauseComesCompletesAndTheNextWaitsForTheResume()
    {
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        var running = await ClaimEventuallyAsync(store, TinyWindow);

        await store.PauseQueueAsync(null, Token);
        await CompleteAsync(store, running);
        var whilePaused = await ClaimAsync(store, TinyWindow);
        await store.ResumeQueueAsync(Token);

        Assert.Null(whilePaused.Window);
        Assert.Null((await store.GetQueuePauseAsync(Token)));
        var next = await ClaimEventuallyAsync(store, TinyWindow);
        Assert.Equal([4], Ids(next));
    }
}
