using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;
using IngestionService.Upstream;

namespace IngestionService.Tests.Scheduling;

/// <summary>
/// Retries, final failures and the upstream's pause, on a fake clock against the real dispatcher, retry
/// policy and SQLite store. The upstream is scripted per id and call; jitter is off, so every retry
/// comes due at the top of its backoff range.
/// </summary>
public sealed class UpstreamFailureTests : IDisposable
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);
    private static readonly UpstreamAnswer ServerError = new(UpstreamVerdict.Retryable, 500, "oops", Error: "HTTP 500 Internal Server Error");
    private readonly TempDatabase _database = new();

    public void Dispose() => _database.Dispose();

    [Fact]
    public async Task AFailedIdGoesBackToItsPlaceInTheOrderOnceItsBackoffIsOver()
    {
        // Id 2 fails once at T1 (the first window's finish); its backoff of 5 s makes it due at T6, so the
        // T5 window goes on without it and the T10 window takes it first, ahead of the ids after it.
        await using var harness = await SchedulingHarness.StartAsync(_database, script: (id, calls) => id == 2 && calls == 0 ? ServerError : null);

        var ingestion = await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5, 6, 7, 8);
        await harness.AdvanceToAsync(25 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[1, 2, 3], [4, 5, 6], [2, 7, 8]], windows.Select(Ids));
        Assert.Equal([0 * Second, 5 * Second, 10 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
        AssertNeverMoreThanThreeCallsPerWindow(harness);

        var status = await harness.StatusAsync(ingestion);
        Assert.Equal(ProgressStatus.Completed, status.Status);
        Assert.Equal((8, 0), (status.CompletedIds, status.FailedIds));

        var retried = (await ResultsAsync(harness, ingestion)).Single(result => result.Id == 2);
        Assert.Equal((FetchState.Succeeded, 2, null), (retried.State, retried.Attempts, retried.Error));
        Assert.Equal(SchedulingHarness.T0 + (11 * Second), retried.FetchedAt);
    }

    [Fact]
    public async Task WhileARetryWaitsItsBatchIsTriggeredAndTheResultSaysWhenItIsNext()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database, script: (id, calls) => id == 2 && calls == 0 ? ServerError : null);

        var ingestion = await harness.SubmitAsync(Priority.Medium, 1, 2, 3);
        await harness.AdvanceToAsync(2 * Second);

        var status = await harness.StatusAsync(ingestion);
        Assert.Equal(ProgressStatus.Triggered, status.Status);
        Assert.Equal(ProgressStatus.Triggered, status.Batches.Single().Status);
        Assert.Equal(2, status.CompletedIds);

        var waiting = (await ResultsAsync(harness, ingestion)).Single(result => result.Id == 2);
        Assert.Equal((FetchState.Retrying, 500, "oops", "HTTP 500 Internal Server Error", 1), (waiting.State, waiting.HttpStatus, waiting.Body, waiting.Error, waiting.Attempts));
        Assert.Equal(SchedulingHarness.T0 + (6 * Second), waiting.NextAttemptAt);
    }

    [Fact]
    public async Task ARetryDueLaterThanTheLimitAllowsStartsItsOwnWindowWhenDueAndNewWorkDoesNotWaitForIt()
    {
        var options = new UpstreamOptions { RetryBaseDelay = 20 * Second };
        await using var harness = await SchedulingHarness.StartAsync(_database, script: (id, calls) => id == 1 && calls == 0 ? ServerError : null, upstreamOptions: options);

        await harness.SubmitAsync(Priority.Low, 1);       // fails at T1, due at T21
        await harness.AdvanceToAsync(10 * Second);
        await harness.SubmitAsync(Priority.Low, 2);       // nothing is due: starts at once
        await harness.AdvanceToAsync(30 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[1], [2], [1]], windows.Select(Ids));
        Assert.Equal([0 * Second, 10 * Second, 21 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
    }

    [Fact]
    public async Task AnIdThatExhaustsItsAttemptsIsRecordedAsFailedAndItsBatchStillCompletes()
    {
        var options = new UpstreamOptions { MaxAttempts = 3, RetryBaseDelay = Second };
        await using var harness = await SchedulingHarness.StartAsync(_database, script: (id, _) => id == 2 ? ServerError : null, upstreamOptions: options);

        var ingestion = await harness.SubmitAsync(Priority.High, 1, 2, 3, 4);
        await harness.AdvanceToAsync(30 * Second);

        Assert.Equal(3, harness.Upstream.Calls.Count(call => call.Id == 2));
        AssertNeverMoreThanThreeCallsPerWindow(harness);

        var status = await harness.StatusAsync(ingestion);
        Assert.Equal(ProgressStatus.Completed, status.Status);
        Assert.Equal((4, 1), (status.CompletedIds, status.FailedIds));
        Assert.Equal([ProgressStatus.Completed, ProgressStatus.Completed], status.Batches.Select(b => b.Status));
        Assert.Equal([1, 0], status.Batches.Select(b => b.FailedIds));

        var failed = (await ResultsAsync(harness, ingestion)).Single(result => result.Id == 2);
        Assert.Equal((FetchState.Failed, 3, null), (failed.State, failed.Attempts, failed.NextAttemptAt));
        Assert.Contains("gave up after 3 failed attempts", failed.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task APermanentErrorFailsTheIdAtOnce()
    {
        var notFound = new UpstreamAnswer(UpstreamVerdict.Permanent, 404, "no such item", Error: "HTTP 404 Not Found");
        await using var harness = await SchedulingHarness.StartAsync(_database, script: (id, _) => id == 1 ? notFound : null);

        var ingestion = await harness.SubmitAsync(Priority.Medium, 1, 2);
        await harness.AdvanceToAsync(20 * Second);

        Assert.Single(harness.Upstream.Calls, call => call.Id == 1);
        var status = await harness.StatusAsync(ingestion);
        Assert.Equal((ProgressStatus.Completed, 1), (status.Status, status.FailedIds));
        var failed = (await ResultsAsync(harness, ingestion)).Single(result => result.Id == 1);
        Assert.Equal((FetchState.Failed, 404, "no such item", 1), (failed.State, failed.HttpStatus, failed.Body, failed.Attempts));
    }

    [Fact]
    public async Task AThrottledAnswerPausesEveryWindowUntilItsRetryAfterAndDoesNotCountAsAFailure()
    {
        // One attempt allowed, yet the throttled id is fetched on its second call: a 429 is the quota's fault.
        var throttled = new UpstreamAnswer(UpstreamVerdict.Throttled, 429, null, Error: "HTTP 429 Too Many Requests", RetryAfter: 30 * Second);
        var options = new UpstreamOptions { MaxAttempts = 1 };
        await using var harness = await SchedulingHarness.StartAsync(_database, script: (id, calls) => id == 1 && calls == 0 ? throttled : null, upstreamOptions: options);

        var ingestion = await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5, 6);
        await harness.AdvanceToAsync(10 * Second);

        // Paused: the window that would start at T5 waits for T1 + 30 s, and the status and log say so.
        Assert.Single(await harness.WindowsAsync());
        var paused = await harness.Store.GetIngestionAsync(ingestion, CancellationToken.None);
        Assert.Equal(SchedulingHarness.T0 + (31 * Second), paused!.PausedUntil);
        Assert.Equal(SchedulingHarness.T0 + (31 * Second), harness.Dispatcher.NextWindowNotBefore);
        Assert.Equal(SchedulingHarness.T0 + (31 * Second), (await harness.WindowsAsync())[0].PausedUntil);

        await harness.AdvanceToAsync(50 * Second);
        var windows = await harness.WindowsAsync();
        Assert.Equal([[1, 2, 3], [1, 4, 5], [6]], windows.Select(Ids));
        Assert.Equal([0 * Second, 31 * Second, 36 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));

        var result = (await ResultsAsync(harness, ingestion)).Single(r => r.Id == 1);
        Assert.Equal((FetchState.Succeeded, 2), (result.State, result.Attempts));
        Assert.Equal((ProgressStatus.Completed, 0), ((await harness.StatusAsync(ingestion)).Status, (await harness.StatusAsync(ingestion)).FailedIds));
    }

    [Fact]
    public async Task AClientThatThrowsFailsOnlyThatIdAndTheWindowCompletes()
    {
        await using var harness = await SchedulingHarness.StartAsync(
            _database,
            script: (id, calls) => id == 3 && calls == 0 ? throw new InvalidOperationException("client bug") : (UpstreamAnswer?)null);

        var ingestion = await harness.SubmitAsync(Priority.Medium, 1, 2, 3);
        await harness.AdvanceToAsync(20 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[1, 2, 3], [3]], windows.Select(Ids));
        Assert.All(windows, w => Assert.Equal(WindowState.Completed, w.State));
        Assert.Equal((FetchState.Succeeded, 2), (await ResultsAsync(harness, ingestion)).Where(r => r.Id == 3).Select(r => (r.State, r.Attempts)).Single());
    }

    [Fact]
    public async Task SpacedFromAnswersTheNextWindowWaitsAWholeWindowAfterThePreviousOnesLastAnswer()
    {
        // Http mode's default: a call that has been answered has surely reached the upstream.
        await using var harness = await SchedulingHarness.StartAsync(_database, upstreamOptions: new UpstreamOptions { SpaceFromAnswers = true });

        await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5, 6, 7);
        await harness.AdvanceToAsync(20 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([0 * Second, 6 * Second, 12 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
    }

    [Fact]
    public async Task AWindowWhoseAnswersCannotBeStoredIsHandedBackAndFetchedAgain()
    {
        // The database fails once as the first window's answers are stored: the window must not stay
        // running (it would block every later claim); its ids go back to the queue and the next window has them.
        await using var harness = await SchedulingHarness.StartAsync(_database, dispatcherStore: (store, _) => new FailingStore(store, completionFailures: 1));

        var ingestion = await harness.SubmitAsync(Priority.High, 1, 2, 3);
        await harness.AdvanceToAsync(10 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([(WindowState.Abandoned, new[] { 1, 2, 3 }), (WindowState.Completed, new[] { 1, 2, 3 })], windows.Select(w => (w.State, Ids(w))), new WindowComparer());
        Assert.Equal(5 * Second, windows[1].StartedAt - SchedulingHarness.T0);
        Assert.Equal(ProgressStatus.Completed, (await harness.StatusAsync(ingestion)).Status);
    }

    [Fact]
    public async Task AStopDuringTheBackoffAfterAStorageFailureEndsTheLoopWithoutAFault()
    {
        // The host reports a loop that ends cancelled as a crash when it stops before it started (a port in use).
        var harness = await SchedulingHarness.StartAsync(_database, dispatcherStore: (store, _) => new FailingStore(store, completionFailures: 1));
        await harness.SubmitAsync(Priority.High, 1, 2, 3);
        await harness.AdvanceToAsync(1.5 * Second); // the answers came at 1 s and could not be stored: backing off

        await harness.DisposeAsync();

        Assert.Equal(TaskStatus.RanToCompletion, harness.Dispatcher.ExecuteTask!.Status);
    }

    [Fact]
    public async Task AWindowLostBeforeItsCallsStartMakesNoCallAndItsIdsRunInTheNextWindow()
    {
        // The claim's answer came back after the lease may have expired: another instance could be
        // running these ids already, so not one call is made; they go back to the queue.
        await using var harness = await SchedulingHarness.StartAsync(_database, dispatcherStore: (store, _) => new FailingStore(store, completionFailures: 0, lostLeases: 1));

        var ingestion = await harness.SubmitAsync(Priority.High, 1, 2, 3);
        await harness.AdvanceToAsync(10 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([(WindowState.Abandoned, new[] { 1, 2, 3 }), (WindowState.Completed, new[] { 1, 2, 3 })], windows.Select(w => (w.State, Ids(w))), new WindowComparer());
        Assert.Equal([(1, 5 * Second), (2, 5 * Second), (3, 5 * Second)], harness.Upstream.Calls.Select(call => (call.Id, call.StartedAt - SchedulingHarness.T0)).Order());
        Assert.Equal(ProgressStatus.Completed, (await harness.StatusAsync(ingestion)).Status);
    }

    [Fact]
    public async Task AWindowLostMidFlightHasItsCallsCancelledAndItsIdsHandedBack()
    {
        // Calls take 1 s; the lease may expire after 0.5 s: the calls are cut off there, the window is
        // handed back uncounted, and its ids are fetched again in the next window, 5 s after the first.
        using var lease = new CancellationTokenSource();
        await using var harness = await SchedulingHarness.StartAsync(_database, dispatcherStore: (store, _) => new FailingStore(store, completionFailures: 0, lostLeases: 1, lost: lease.Token));

        var ingestion = await harness.SubmitAsync(Priority.High, 1, 2, 3);
        await harness.AdvanceToAsync(0.5 * Second);
        await lease.CancelAsync();
        await harness.AdvanceToAsync(10 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([(WindowState.Abandoned, new[] { 1, 2, 3 }), (WindowState.Completed, new[] { 1, 2, 3 })], windows.Select(w => (w.State, Ids(w))), new WindowComparer());
        Assert.Equal(
            [(1, TimeSpan.Zero), (1, 5 * Second), (2, TimeSpan.Zero), (2, 5 * Second), (3, TimeSpan.Zero), (3, 5 * Second)],
            harness.Upstream.Calls.Select(call => (call.Id, call.StartedAt - SchedulingHarness.T0)).Order());
        Assert.Equal(3, harness.Upstream.MaxInFlight);
        var status = await harness.StatusAsync(ingestion);
        Assert.Equal(ProgressStatus.Completed, status.Status);
        Assert.Equal((3, 0), (status.CompletedIds, status.FailedIds)); // the cut-off calls count as nothing, not as failures
    }

    [Fact]
    public void BackoffDoublesPerFailureWithinItsCapAndJitterKeepsItInTheUpperHalf()
    {
        var options = Microsoft.Extensions.Options.Options.Create(new UpstreamOptions { RetryBaseDelay = 2 * Second, RetryMaxDelay = 20 * Second });
        var top = new RetryPolicy(options, () => 1.0);
        var bottom = new RetryPolicy(options, () => 0.0);

        Assert.Equal([2 * Second, 4 * Second, 8 * Second, 16 * Second, 20 * Second, 20 * Second], Enumerable.Range(1, 6).Select(top.Backoff));
        Assert.Equal([1 * Second, 2 * Second, 4 * Second, 8 * Second, 10 * Second, 10 * Second], Enumerable.Range(1, 6).Select(bottom.Backoff));
        Assert.Equal(20 * Second, top.Backoff(1000));
    }

    [Fact]
    public void APauseIsWhatTheUpstreamAskedForWithinTheConfiguredBounds()
    {
        var policy = new RetryPolicy(Microsoft.Extensions.Options.Options.Create(new UpstreamOptions { DefaultRetryAfter = 7 * Second, MaxPause = 60 * Second }));

        Assert.Equal(12 * Second, policy.PauseFor(new UpstreamAnswer(UpstreamVerdict.Throttled, 429, null, RetryAfter: 12 * Second)));
        Assert.Equal(7 * Second, policy.PauseFor(new UpstreamAnswer(UpstreamVerdict.Throttled, 429, null)));
        Assert.Equal(60 * Second, policy.PauseFor(new UpstreamAnswer(UpstreamVerdict.Throttled, 429, null, RetryAfter: TimeSpan.FromDays(2))));
    }

    /// <summary>No Window-long span (half-open) holds more than BatchSize calls, retries included.</summary>
    private static void AssertNeverMoreThanThreeCallsPerWindow(SchedulingHarness harness)
    {
        var starts = harness.Upstream.Calls.Select(call => call.StartedAt).Order().ToList();
        for (var i = 0; i < starts.Count; i++)
        {
            Assert.True(starts.Count(t => t > starts[i] - (5 * Second) && t <= starts[i]) <= 3, $"more than 3 calls in the 5 s before {starts[i]:O}");
        }
    }

    private static async Task<IReadOnlyList<IdResult>> ResultsAsync(SchedulingHarness harness, Guid ingestion) =>
        (await harness.Store.GetResultsAsync(ingestion, -1, 1000, CancellationToken.None))!;

    private static int[] Ids(WindowRecord window) => [.. window.Items.SelectMany(item => item.Ids)];

    private sealed class WindowComparer : IEqualityComparer<(WindowState State, int[] Ids)>
    {
        public bool Equals((WindowState State, int[] Ids) x, (WindowState State, int[] Ids) y) => x.State == y.State && x.Ids.SequenceEqual(y.Ids);

        public int GetHashCode((WindowState State, int[] Ids) obj) => (int)obj.State;
    }
}
