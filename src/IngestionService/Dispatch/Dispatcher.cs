using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Storage;
using IngestionService.Upstream;
using Microsoft.Extensions.Options;

namespace IngestionService.Dispatch;

/// <summary>
/// The one loop that talks to the upstream. Each iteration admits one window: it waits until the rate
/// limiter allows the next start (at least <see cref="IngestionOptions.Window"/> after the previous
/// start, and never before the previous window's fetches are done, because the loop is sequential),
/// claims up to <see cref="IngestionOptions.BatchSize"/> next ids from the store in the global order,
/// fetches them concurrently and stores the results. When nothing waits it parks until an ingestion
/// is committed, so an idle service starts the first window the moment work arrives; on a store shared
/// by several processes it also looks again every <see cref="IIngestionStore.PollInterval"/>. The
/// limiter's decision is the store's (<see cref="IIngestionStore.ClaimWindowAsync"/>), so several
/// processes on one database share one limit.
/// </summary>
public sealed partial class Dispatcher(
    IIngestionStore store,
    IUpstreamClient upstream,
    DispatchSignal signal,
    TimeProvider clock,
    IOptions<IngestionOptions> options,
    ILogger<Dispatcher> logger,
    IngestionMetrics? metrics = null) : BackgroundService
{
    private static readonly TimeSpan FailureBackoff = TimeSpan.FromSeconds(1);

    private readonly int _batchSize = options.Value.BatchSize;
    private readonly TimeSpan _window = options.Value.Window;
    private readonly TimeSpan _shutdownTimeout = options.Value.ShutdownTimeout;

    // Fetches are not cut off the moment the service is asked to stop: the window in flight may finish
    // within ShutdownTimeout, so its results are stored and nothing is left running for a restart.
    // Not disposed: the host may ask to stop after disposing, and an undisposed source holds nothing.
    private readonly CancellationTokenSource _abortFetches = new();
    private DateTimeOffset _notBefore = DateTimeOffset.MinValue;
    private volatile Task? _parkedOn;
    private Task? _wakeUp;

    /// <summary>
    /// What the loop is waiting on right now (a timer, the fetches, or the wake-up signal), or null while
    /// it works. Tests on a fake clock wait until this is an unfinished task before advancing time.
    /// </summary>
    internal Task? ParkedOn => _parkedOn;

    /// <summary>The earliest moment this process may start its next window; the store may still say later.</summary>
    public DateTimeOffset NextWindowNotBefore => _notBefore;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        metrics?.ObserveNextAdmission(() => Math.Max(0, (_notBefore - clock.GetUtcNow()).TotalSeconds));
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
                LogDispatchFailed(logger, exception, FailureBackoff);
                await ParkAsync(Task.Delay(FailureBackoff, clock, stoppingToken));
            }
        }
    }

    /// <summary>
    /// Admits and runs at most one window. Returns the window it ran, or null if it found nothing to do
    /// and waited for the next wake-up.
    /// </summary>
    internal async Task<ClaimedWindow?> DispatchOnceAsync(CancellationToken cancellationToken)
    {
        // This process's own windows are spaced on its own clock from the moment their calls left, which
        // is a little after the claim's commit; the store's limiter then decides for every process.
        // A loop, because timers may fire a little early (they count whole milliseconds on their own
        // clock): the limit is checked against the clock itself, never against the timer's word.
        for (var now = clock.GetUtcNow(); now < _notBefore; now = clock.GetUtcNow())
        {
            await ParkAsync(Task.Delay(CeilingToMillisecond(_notBefore - now), clock, cancellationToken));
        }

        var claim = await store.ClaimWindowAsync(clock.GetUtcNow(), _batchSize, _window, cancellationToken);
        if (claim.Window is not { } window)
        {
            if (claim.RetryAfter is { } retryAfter)
            {
                // The limiter said not yet: new work cannot change that, only time can.
                _notBefore = clock.GetUtcNow() + retryAfter;
                await ParkAsync(Task.Delay(CeilingToMillisecond(retryAfter), clock, cancellationToken));
            }
            else if (store.PollInterval is { } poll)
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

            return null;
        }

        // Measured again after the claim's commit, just before the first call leaves: this process's next
        // window is spaced from here, so the upstream itself never sees two of its windows closer than Window.
        _notBefore = clock.GetUtcNow() + _window;
        LogWindowStarted(logger, window.Seq, window.StartedAt, new WindowItemsText(window.Items));

        metrics?.WindowStarted(window);

        string[] results;
        try
        {
            var fetches = new Task<string>[window.Items.Count];
            for (var i = 0; i < fetches.Length; i++)
            {
                fetches[i] = FetchAsync(window.Items[i].Id, _abortFetches.Token);
            }

            var all = Task.WhenAll(fetches);
            await ParkAsync(all);
            results = await all;
        }
        catch (Exception exception)
        {
            // A failed fetch, or a stop that outlasted ShutdownTimeout: the ids go back to the queue at once,
            // so nothing is left running for a restart or another instance to wait out.
            if (exception is not OperationCanceledException)
            {
                LogWindowFailed(logger, exception, window.Seq);
            }

            await store.AbandonWindowAsync(window, CancellationToken.None);
            metrics?.IdsFailed(window.Items.Count);
            cancellationToken.ThrowIfCancellationRequested();
            return window;
        }

        var finishedAt = CeilingToMillisecond(clock.GetUtcNow());
        await store.CompleteWindowAsync(window, results, finishedAt, CancellationToken.None);
        metrics?.IdsFetched(window.Items.Count);
        LogWindowCompleted(logger, window.Seq, window.StartedAt, finishedAt, new WindowItemsText(window.Items));
        return window;
    }

    /// <summary>
    /// The upstream's own task, with the metrics taken on the side: awaiting a wrapper would complete a
    /// moment after the fetch itself, and the fake-clock tests read completion straight off the task.
    /// </summary>
    private Task<string> FetchAsync(int id, CancellationToken cancellationToken)
    {
        if (metrics is null)
        {
            return upstream.FetchAsync(id, cancellationToken);
        }

        var started = clock.GetTimestamp();
        metrics.FetchStarted();
        var fetch = upstream.FetchAsync(id, cancellationToken);
        fetch.ContinueWith(
            (_, state) => ((IngestionMetrics)state!).FetchFinished(clock.GetElapsedTime(started)),
            metrics,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return fetch;
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

    private static TimeSpan CeilingToMillisecond(TimeSpan duration) =>
        TimeSpan.FromTicks((duration.Ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond * TimeSpan.TicksPerMillisecond);

    private static DateTimeOffset CeilingToMillisecond(DateTimeOffset time)
    {
        var remainder = time.UtcTicks % TimeSpan.TicksPerMillisecond;
        return remainder == 0 ? time : time.AddTicks(TimeSpan.TicksPerMillisecond - remainder);
    }

    /// <summary>A window's ids for the log line, formatted only if the line is written.</summary>
    private readonly record struct WindowItemsText(IReadOnlyList<WindowItem> Items)
    {
        public override string ToString() =>
            string.Join(", ", Items.Select(item => $"{item.Id} ({item.Priority.ToWire()} {item.IngestionId}#{item.Position})"));
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Window {WindowSeq} started at {StartedAt:O}: {Items}")]
    private static partial void LogWindowStarted(ILogger logger, long windowSeq, DateTimeOffset startedAt, WindowItemsText items);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Window {WindowSeq} started {StartedAt:O} finished {FinishedAt:O}: {Items}")]
    private static partial void LogWindowCompleted(ILogger logger, long windowSeq, DateTimeOffset startedAt, DateTimeOffset finishedAt, WindowItemsText items);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Window {WindowSeq} failed; its ids are back in the queue")]
    private static partial void LogWindowFailed(ILogger logger, Exception exception, long windowSeq);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Dispatching failed; trying again in {Backoff}")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, TimeSpan backoff);
}
