using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Upstream;
using Microsoft.Extensions.Options;

namespace IngestionService.Dispatch;

/// <summary>
/// The one loop that talks to the upstream. Each iteration admits one window: it waits until the rate
/// limiter allows the next start (at least <see cref="IngestionOptions.Window"/> after the previous
/// start, and never before the previous window's fetches are done, because the loop is sequential),
/// claims up to the limit in force (<see cref="LimitInForce"/>) of next ids from the store in the global order,
/// fetches them concurrently and stores the results. When nothing waits it parks until an ingestion
/// is committed, so an idle service starts the first window the moment work arrives; on a store shared
/// by several processes it also looks again every <see cref="IQueueStore.PollInterval"/>. The
/// limiter's decision is the store's (<see cref="IQueueStore.ClaimWindowAsync"/>), so several
/// processes on one database share one limit.
/// </summary>
public sealed partial class Dispatcher(
    IQueueStore store,
    IUpstreamClient upstream,
    RetryPolicy retryPolicy,
    DispatchSignal signal,
    AdmissionBound bound,
    TimeProvider clock,
    IOptions<IngestionOptions> options,
    IOptions<UpstreamOptions> upstreamOptions,
    LimitInForce limits,
    ILogger<Dispatcher> logger,
    IngestionMetrics? metrics = null,
    StoreWrites? writes = null,
    Notifications.OutboxSignal? finals = null,
    Events.ServiceEvents? events = null,
    WindowTracing? tracing = null) : BackgroundService
{
    private static readonly TimeSpan FailureBackoff = TimeSpan.FromSeconds(1);

    private readonly WindowSpacing _configured = new(options.Value.Window, upstreamOptions.Value.EffectiveSpaceFromAnswers);
    private readonly TimeSpan _shutdownTimeout = options.Value.ShutdownTimeout;

    // Fetches are not cut off the moment the service is asked to stop: the window in flight may finish
    // within ShutdownTimeout, so its results are stored and nothing is left running for a restart.
    // Not disposed: the host may ask to stop after disposing, and an undisposed source holds nothing.
    private readonly CancellationTokenSource _abortFetches = new();
    private volatile Task? _parkedOn;
    private Task? _wakeUp;
    private ITimer? _dueTimer;
    private ClaimedWindow? _handBack;

    /// <summary>
    /// What the loop is waiting on right now (a timer, the fetches, or the wake-up signal), or null while
    /// it works. Tests on a fake clock wait until this is an unfinished task before advancing time.
    /// </summary>
    internal Task? ParkedOn => _parkedOn;

    /// <summary>The earliest moment this process may start its next window; the store may still say later.</summary>
    public DateTimeOffset NextWindowNotBefore => bound.NotBefore;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        metrics?.ObserveNextAdmission(() => Math.Max(0, (bound.NotBefore - clock.GetUtcNow()).TotalSeconds));
        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _abortFetches.CancelAfter(_shutdownTimeout);
        await base.StopAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await DispatchOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                // Storage trouble (disk full, file locked by hand): keep the service up and try again.
                writes?.Refused(exception);
                LogDispatchFailed(logger, exception, FailureBackoff);
                await ParkAsync(Task.Delay(FailureBackoff, clock, stoppingToken)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing); // a stop ends the loop
            }
        }
    }

    /// <summary>
    /// Admits and runs at most one window. Returns the window it ran, or null if it found nothing to do
    /// and waited for the next wake-up.
    /// </summary>
    internal async Task<ClaimedWindow?> DispatchOnceAsync(CancellationToken cancellationToken)
    {
        if (_handBack is not null)
        {
            await HandBackAsync();
            if (_handBack is not null)
            {
                throw new InvalidOperationException($"Window {_handBack.Seq} still cannot be handed back to the queue.");
            }
        }

        // This process's own windows are spaced on its own clock from the moment their calls left, which
        // is a little after the claim's commit; the store's limiter then decides for every process.
        // A loop, because timers may fire a little early (they count whole milliseconds on their own
        // clock): the limit is checked against the clock itself, never against the timer's word.
        for (var now = clock.GetUtcNow(); now < bound.NotBefore; now = clock.GetUtcNow())
        {
            await ParkAsync(Task.Delay(Milliseconds.Ceiling(bound.NotBefore - now), clock, cancellationToken));
        }

        var claim = await store.ClaimWindowAsync(limits.Configured.BatchSize, _configured, cancellationToken);
        limits.Apply(claim.Override, claim.LimitVersion);
        var applied = claim.Override ?? limits.Configured; // what this window was admitted under, whatever changes next
        if (claim.Expired > 0)
        {
            metrics?.IdsCancelled(claim.Expired, CancelReason.Expired);
            LogExpired(logger, claim.Expired);
            finals?.Notify(); // an ingestion whose every waiting id expired is final now
        }

        if (claim.Window is not { } window)
        {
            if (claim.RetryAfter is { } retryAfter)
            {
                // The limiter said not yet: new work cannot change that, only time can.
                bound.Set(clock.GetUtcNow() + retryAfter);
                await ParkAsync(Task.Delay(Milliseconds.Ceiling(retryAfter), clock, cancellationToken));
            }
            else
            {
                if (claim.NextDueIn is { } dueIn)
                {
                    // Ids wait out a retry delay: the signal wakes this loop when the first comes due, as new work would.
                    WakeAfter(dueIn);
                }

                await WaitForWorkAsync(cancellationToken);
            }

            return null;
        }

        // Its span is current while its calls start, so theirs go under it.
        using var span = WindowTracing.Start(window, tracing is null ? null : await tracing.ParentsAsync(window));

        // A window this instance may no longer hold (its lease may have expired while the claim's answer
        // was on its way) starts no call; one that loses it mid-flight has its calls cancelled.
        using var calls = CancellationTokenSource.CreateLinkedTokenSource(_abortFetches.Token, window.Lost);
        var fetches = new Task<UpstreamAnswer>[window.Items.Count];
        for (var i = 0; i < fetches.Length; i++)
        {
            fetches[i] = window.Lost.IsCancellationRequested ? Task.FromCanceled<UpstreamAnswer>(window.Lost) : FetchAsync(window.Items[i].Id, calls.Token);
        }

        // Measured again once the calls are on their way (a first call can spend a while getting there: a
        // connection to open, code to compile): this process's next window is spaced from here.
        var sent = new LimiterFacts(clock.GetUtcNow());
        var spacing = _configured with { Window = applied.Window };
        bound.Set(AdmissionRule.NotBefore(sent, spacing));
        LogWindowStarted(logger, window.Seq, window.StartedAt, new WindowItemsText(window.Items));
        metrics?.WindowStarted(window);
        events?.Started(window);

        try
        {
            await ParkAsync(Task.WhenAll(fetches));
        }
        catch (Exception)
        {
            // Looked at call by call below.
        }

        // Every call has been answered, so every call has reached the upstream: spaced from the answers, a
        // window from here on cannot land within Window of this one in the upstream's own count.
        var answeredAt = clock.GetUtcNow();
        var answered = sent with { LastFinish = answeredAt };
        bound.Set(AdmissionRule.NotBefore(answered, spacing));

        if ((_abortFetches.IsCancellationRequested || window.Lost.IsCancellationRequested) && fetches.Any(fetch => !fetch.IsCompletedSuccessfully))
        {
            // A stop that outlasted ShutdownTimeout, or a lease that may have expired: the ids go back to
            // the queue, uncounted, so nothing is left running for a restart or another instance to wait
            // out (or, if the store cannot be reached now, at the next attempt).
            _handBack = window;
            await HandBackAsync();
            cancellationToken.ThrowIfCancellationRequested();
            return window;
        }

        var outcome = Decide(window, fetches);
        DateTimeOffset finishedAt;
        try
        {
            finishedAt = await store.CompleteWindowAsync(window, outcome, CancellationToken.None);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // The answers cannot be stored (the database is failing): the window must not stay running, or it
            // would block every later claim. Its ids go back to the queue, now or at the next attempt.
            LogCompleteFailed(logger, exception, window.Seq);
            _handBack = window;
            await HandBackAsync();
            throw;
        }

        DateTimeOffset? upstreamPause = null;
        if (outcome.Pause is { } pause)
        {
            // The upstream said its quota is gone: no window until it said to come back, here as in the store.
            var pausedUntil = Milliseconds.Ceiling(answeredAt + pause);
            bound.Set(AdmissionRule.NotBefore(answered with { PausedUntil = pausedUntil }, spacing));
            LogUpstreamPaused(logger, window.Seq, pausedUntil);
            upstreamPause = pausedUntil;
        }

        metrics?.WindowFinished(outcome);
        events?.Finished(window, outcome, finishedAt, upstreamPause);
        finals?.Notify(); // the window may have made ingestions final: their events are in the outbox
        LogWindowCompleted(logger, window.Seq, window.StartedAt, finishedAt, new WindowItemsText(window.Items));
        return window;
    }

    /// <summary>
    /// What each call came to, by the retry policy. A client that throws instead of answering (a bug, or
    /// an error it did not foresee) fails that id like a failed call, never the whole window.
    /// </summary>
    private WindowOutcome Decide(ClaimedWindow window, Task<UpstreamAnswer>[] fetches)
    {
        var outcomes = new FetchOutcome[fetches.Length];
        TimeSpan? pause = null;
        for (var i = 0; i < fetches.Length; i++)
        {
            var item = window.Items[i];
            UpstreamAnswer answer;
            if (fetches[i].IsCompletedSuccessfully)
            {
                answer = fetches[i].Result;
            }
            else
            {
                // Faulted, or cancelled by something other than this service's stop (which abandons the window).
                var exception = fetches[i].Exception?.GetBaseException() ?? new TaskCanceledException(fetches[i]);
                LogFetchThrew(logger, exception, item.Id, window.Seq);
                answer = new UpstreamAnswer(UpstreamVerdict.Retryable, null, null, Error: $"{exception.GetType().Name}: {exception.Message}");
            }

            outcomes[i] = retryPolicy.Decide(item, answer);
            if (answer.Verdict == UpstreamVerdict.Throttled && outcomes[i].RetryAfter is { } wait && (pause is null || wait > pause))
            {
                pause = wait;
            }

            if (outcomes[i].State != FetchState.Succeeded)
            {
                LogFetchFailed(logger, item.Id, window.Seq, outcomes[i].State, outcomes[i].Error, outcomes[i].Attempts);
            }
        }

        return new WindowOutcome(outcomes, pause);
    }

    /// <summary>Hands back the window whose answers could not be stored; keeps it to try again if that fails too.</summary>
    private async Task HandBackAsync()
    {
        try
        {
            await store.AbandonWindowAsync(_handBack!, CancellationToken.None);
            metrics?.IdsRequeued(_handBack!.Items.Count);
            events?.Finished(_handBack!, null, clock.GetUtcNow(), null); // abandoned, whichever way it was handed back
            _handBack = null;
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            LogHandBackFailed(logger, exception, _handBack!.Seq);
        }
    }

    /// <summary>Parks until work is committed in this process, or, on a shared store, until the next poll.</summary>
    private async Task WaitForWorkAsync(CancellationToken cancellationToken)
    {
        if (store.PollInterval is { } poll)
        {
            // Other processes add work and finish windows without telling this one: look again soon.
            // One wake-up wait is kept across polls, so a signal that arrives while this process is busy
            // is not spent on a wait nobody watches any more (the delay carries the token).
            var wakeUp = _wakeUp ??= signal.WaitAsync(CancellationToken.None);
            await ParkAsync(Task.WhenAny(wakeUp, Task.Delay(poll, clock, cancellationToken)));
            cancellationToken.ThrowIfCancellationRequested();
            if (wakeUp.IsCompleted)
            {
                _wakeUp = null;
            }
        }
        else
        {
            await ParkAsync(signal.WaitAsync(cancellationToken));
        }
    }

    /// <summary>
    /// Notifies the wake-up signal after <paramref name="delay"/>, replacing an earlier such timer. A timer
    /// rather than a second thing to wait on: the signal completes its waiter inside the timer's callback,
    /// so on a fake clock the dispatcher is visibly about to move the moment time reaches the due time.
    /// </summary>
    private void WakeAfter(TimeSpan delay)
    {
        _dueTimer?.Dispose();
        _dueTimer = clock.CreateTimer(static state => ((DispatchSignal)state!).Notify(), signal, Milliseconds.Ceiling(delay), Timeout.InfiniteTimeSpan);
    }

    public override void Dispose()
    {
        _dueTimer?.Dispose();
        base.Dispose();
    }

    private async Task ParkAsync(Task task)
    {
        _parkedOn = task;
        try
        {
            await task;
        }
        finally
        {
            _parkedOn = null;
        }
    }
}
