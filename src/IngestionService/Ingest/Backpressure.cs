using IngestionService.Dispatch;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>What backpressure says about a new request.</summary>
public readonly record struct BackpressureVerdict(bool Accepted, TimeSpan RetryAfter, TimeSpan Drain, bool NeverFits)
{
    public static BackpressureVerdict Accept => new(true, TimeSpan.Zero, TimeSpan.Zero, false);
}

/// <summary>
/// <c>Ingestion:MaxBacklog</c>: refuses new work while the queue, with the new ids, would take longer than
/// that to drain at the rate limit. The drain time is the wait for the next admission (a pause the
/// upstream asked for included) plus one <c>Window</c> per <c>BatchSize</c> ids waiting; the Retry-After
/// is how long until enough of the queue has drained for the request to fit.
/// </summary>
public sealed class Backpressure(IIngestionStore store, Dispatcher dispatcher, TimeProvider clock, IOptions<IngestionOptions> options)
{
    private readonly TimeSpan? _maxBacklog = options.Value.MaxBacklog;
    private readonly int _batchSize = options.Value.BatchSize;
    private readonly TimeSpan _window = options.Value.Window;

    public bool Enabled => _maxBacklog is not null;

    public async ValueTask<BackpressureVerdict> CheckAsync(int newIds, CancellationToken cancellationToken)
    {
        if (_maxBacklog is not { } maxBacklog)
        {
            return BackpressureVerdict.Accept;
        }

        var alone = WindowsFor(newIds) * _window;
        if (alone > maxBacklog)
        {
            return new BackpressureVerdict(false, TimeSpan.Zero, alone, NeverFits: true);
        }

        var waiting = (await store.GetQueueDepthAsync(cancellationToken)).Total;
        var now = clock.GetUtcNow();
        var untilAdmission = dispatcher.NextWindowNotBefore > now ? dispatcher.NextWindowNotBefore - now : TimeSpan.Zero;
        var drain = untilAdmission + (WindowsFor(waiting + newIds) * _window);
        if (drain <= maxBacklog)
        {
            return BackpressureVerdict.Accept;
        }

        // Whole seconds, rounded up, as Retry-After carries them.
        var retryAfter = TimeSpan.FromSeconds(Math.Ceiling((drain - maxBacklog).TotalSeconds));
        return new BackpressureVerdict(false, retryAfter, drain, NeverFits: false);
    }

    private long WindowsFor(long ids) => (ids + _batchSize - 1) / _batchSize;
}
