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
/// <c>Ingestion:MaxBacklog</c>: refuses a request while the work ahead of it in the global order (the ids
/// waiting at its own priority and above: less urgent work waits behind it), with its own ids, would take
/// longer than that to drain at the rate limit. The drain time is the wait for the next admission plus
/// one <c>Window</c> per <c>BatchSize</c> of those ids; the Retry-After is how long until enough of that
/// work has drained for the request to fit.
/// </summary>
public sealed class Backpressure(IQueueReader store, AdmissionBound admission, TimeProvider clock, IOptions<IngestionOptions> options, LimitInForce limits)
{
    private readonly TimeSpan? _maxBacklog = options.Value.MaxBacklog;

    public bool Enabled => _maxBacklog is not null;

    public async ValueTask<BackpressureVerdict> CheckAsync(Priority priority, int newIds, CancellationToken cancellationToken)
    {
        if (_maxBacklog is not { } maxBacklog)
        {
            return BackpressureVerdict.Accept;
        }

        var limit = limits.Current;
        var alone = WindowsFor(newIds, limit) * limit.Window;
        if (alone > maxBacklog)
        {
            return new BackpressureVerdict(false, TimeSpan.Zero, alone, NeverFits: true);
        }

        var waiting = (await store.GetQueueDepthAsync(cancellationToken)).UpTo(priority);

        var now = clock.GetUtcNow();
        var untilAdmission = admission.NotBeforeFrom(now) - now;
        var drain = untilAdmission + (WindowsFor(waiting + newIds, limit) * limit.Window);
        if (drain <= maxBacklog)
        {
            return BackpressureVerdict.Accept;
        }

        // Whole seconds, rounded up, as Retry-After carries them.
        var retryAfter = TimeSpan.FromSeconds(Math.Ceiling((drain - maxBacklog).TotalSeconds));
        return new BackpressureVerdict(false, retryAfter, drain, NeverFits: false);
    }

    private static long WindowsFor(long ids, Scheduling.RateLimit limit) => (ids + limit.BatchSize - 1) / limit.BatchSize;
}
