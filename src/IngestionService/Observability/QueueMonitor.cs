using IngestionService.Ingest;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Observability;

/// <summary>
/// Samples the store every couple of seconds for what the gauges show: ids waiting by priority, and the
/// compliance figure, the most ids started within any <c>Window</c>-long span of the window log, and the
/// upstream's pause. Read
/// from the store rather than counted in memory, so both are true for several instances as well.
/// </summary>
public sealed partial class QueueMonitor(IIngestionStore store, TimeProvider clock, IOptions<IngestionOptions> options, ILogger<QueueMonitor> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    private const int WindowsPerSample = 1000;

    private readonly TimeSpan _window = options.Value.Window;
    private readonly List<(long Seq, DateTimeOffset StartedAt, int Ids)> _recent = [];
    private long _lastSeq;
    private QueueDepth _depth;
    private int _maxIdsPerWindowSpan;
    private DateTimeOffset? _pausedUntil;

    public QueueDepth Depth => _depth;

    /// <summary>Seconds left of the pause the upstream asked for (429 / Retry-After); zero when none.</summary>
    public double PauseRemainingSeconds => _pausedUntil is { } until && until > clock.GetUtcNow() ? (until - clock.GetUtcNow()).TotalSeconds : 0;

    public int MaxIdsPerWindowSpan => Volatile.Read(ref _maxIdsPerWindowSpan);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, clock);
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

    internal async Task SampleAsync(CancellationToken cancellationToken)
    {
        _depth = await store.GetQueueDepthAsync(cancellationToken);
        _pausedUntil = await store.GetPausedUntilAsync(cancellationToken);
        var fresh = (await store.GetRecentWindowsAsync(WindowsPerSample, cancellationToken))
            .Where(w => w.Seq > _lastSeq)
            .OrderBy(w => w.StartedAt)
            .ThenBy(w => w.Seq);
        foreach (var window in fresh)
        {
            // Spans are half-open, (start - Window, start]: two windows exactly Window apart are allowed.
            _recent.RemoveAll(w => w.StartedAt <= window.StartedAt - _window);
            _recent.Add((window.Seq, window.StartedAt, window.Items.Sum(item => item.Ids.Length)));
            var inSpan = _recent.Sum(w => w.Ids);
            if (inSpan > _maxIdsPerWindowSpan)
            {
                Volatile.Write(ref _maxIdsPerWindowSpan, inSpan);
            }

            _lastSeq = Math.Max(_lastSeq, window.Seq);
        }
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Sampling the queue for metrics failed; trying again shortly")]
    private static partial void LogSampleFailed(ILogger logger, Exception exception);
}
