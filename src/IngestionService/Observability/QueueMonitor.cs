using IngestionService.Dispatch;
using IngestionService.Scheduling;
using IngestionService.Storage;

namespace IngestionService.Observability;

/// <summary>
/// Samples the store every couple of seconds for what the gauges show: ids waiting by priority, and the
/// compliance figures (the most ids started within any span of the window log as long as the Window of
/// the window that ends it, and the windows that broke the limit in force when they started), and the
/// upstream's pause. Read
/// from the store rather than counted in memory, so both are true for several instances as well.
/// </summary>
public sealed partial class QueueMonitor(IQueueReader store, TimeProvider clock, LimitInForce limits, ILogger<QueueMonitor> logger, Events.ServiceEvents? events = null) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    private const int WindowsPerSample = Retention.KeptWindows; // the retention keeps at least these

    private readonly List<(long Seq, DateTimeOffset StartedAt, int Ids)> _recent = [];
    private (DateTimeOffset StartedAt, TimeSpan Window)? _previous;
    private int _violations;
    private long _lastSeq;
    private QueueDepth _depth;
    private long _storeBytes;
    private int _maxIdsPerWindowSpan;
    private DateTimeOffset? _pausedUntil;
    private volatile bool _queuePaused;

    public QueueDepth Depth => _depth;

    /// <summary>The store's size on disk at the last sample.</summary>
    public long StoreBytes => Interlocked.Read(ref _storeBytes);

    /// <summary>Seconds left of the pause the upstream asked for (429 / Retry-After); zero when none.</summary>
    public double PauseRemainingSeconds => _pausedUntil is { } until && until > clock.GetUtcNow() ? (until - clock.GetUtcNow()).TotalSeconds : 0;

    public int MaxIdsPerWindowSpan => Volatile.Read(ref _maxIdsPerWindowSpan);

    /// <summary>Windows that broke the limit in force when they started: too soon after the previous one, or more ids within their Window than their batch size.</summary>
    public int Violations => Volatile.Read(ref _violations);

    /// <summary>Whether an operator has paused the queue, by any instance.</summary>
    public bool QueuePaused => _queuePaused;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, clock);
        try
        {
            do
            {
                try
                {
                    await SampleAsync(stoppingToken);
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    LogSampleFailed(logger, exception);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping, or a host that never started being disposed: not a fault.
        }
    }

    internal async Task SampleAsync(CancellationToken cancellationToken)
    {
        _depth = await store.GetQueueDepthAsync(cancellationToken);
        events?.Depth(_depth);
        Interlocked.Exchange(ref _storeBytes, await store.GetStoreBytesAsync(cancellationToken));
        _pausedUntil = await store.GetPausedUntilAsync(cancellationToken);
        _queuePaused = await store.GetQueuePauseAsync(cancellationToken) is not null;
        var fresh = (await store.GetRecentWindowsAsync(WindowsPerSample, cancellationToken))
            .Where(w => w.Seq > _lastSeq)
            .OrderBy(w => w.StartedAt)
            .ThenBy(w => w.Seq);
        foreach (var window in fresh)
        {
            // Each window by the limit in force when it started (windows stored before limits were, by today's).
            var limit = window.Limit ?? limits.Current;

            // Spans are half-open, (start - Window, start]: two windows exactly Window apart are allowed.
            _recent.RemoveAll(w => w.StartedAt <= window.StartedAt - limit.Window);
            _recent.Add((window.Seq, window.StartedAt, window.Items.Sum(item => item.Ids.Length)));
            var inSpan = _recent.Sum(w => w.Ids);
            if (inSpan > _maxIdsPerWindowSpan)
            {
                Volatile.Write(ref _maxIdsPerWindowSpan, inSpan);
            }

            if (inSpan > limit.BatchSize || (_previous is { } previous && window.StartedAt - previous.StartedAt < previous.Window))
            {
                Interlocked.Increment(ref _violations);
            }

            _previous = (window.StartedAt, limit.Window);
            _lastSeq = Math.Max(_lastSeq, window.Seq);
        }
    }

    [LoggerMessage(EventId = LogEvents.SampleFailed, Level = LogLevel.Warning, Message = "Sampling the queue for metrics failed; trying again shortly")]
    private static partial void LogSampleFailed(ILogger logger, Exception exception);
}
