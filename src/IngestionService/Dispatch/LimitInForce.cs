using IngestionService.Ingest;
using IngestionService.Scheduling;
using Microsoft.Extensions.Options;

namespace IngestionService.Dispatch;

/// <summary>
/// The rate limit this process applies and reports: the configured one, or an operator's override as the
/// store last said (every claim reads it in its own transaction, so every instance applies a change from
/// its next admission). Read from request threads for estimates, backpressure and the queue view; a
/// reader always sees one whole limit, and an older reading never replaces a newer one.
/// </summary>
public sealed class LimitInForce(IOptions<IngestionOptions> options)
{
    private Setting _setting = new(0, null);

    public RateLimit Configured { get; } = new(options.Value.BatchSize, options.Value.Window);

    public RateLimit Current => Volatile.Read(ref _setting).Override ?? Configured;

    /// <summary>
    /// What the store holds as of change <paramref name="version"/> (its <c>LimitChange.Seq</c>, 0 for
    /// none): an override, or null for the configuration. Ignored when a newer change is already applied.
    /// </summary>
    public void Apply(RateLimit? overriding, long version)
    {
        var next = new Setting(version, overriding);
        var seen = Volatile.Read(ref _setting);
        while (seen.Version <= version && !ReferenceEquals(Interlocked.CompareExchange(ref _setting, next, seen), seen))
        {
            seen = Volatile.Read(ref _setting);
        }
    }

    private sealed record Setting(long Version, RateLimit? Override);
}
