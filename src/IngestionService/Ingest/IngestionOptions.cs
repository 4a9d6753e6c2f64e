using Microsoft.Extensions.Options;

namespace IngestionService.Ingest;

/// <summary>The rate limit and the request limits (configuration section <c>Ingestion</c>).</summary>
public sealed class IngestionOptions
{
    public const string SectionName = "Ingestion";

    /// <summary>Ids per window, and the most ids in flight at once.</summary>
    public int BatchSize { get; set; } = 3;

    /// <summary>The least time between two window starts.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Several instances on one database: how often an instance with nothing to do looks at the shared
    /// queue and limiter again (work submitted elsewhere, a window finished or abandoned elsewhere).
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Several instances on one database: how long a running window stays its instance's without a
    /// heartbeat (renewed every third of it). When an instance dies, its window is handed back to the
    /// queue by the next claim after this much time, so failover takes at most Lease + PollInterval.
    /// </summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a stopping service lets the window in flight finish before it hands the window's ids back
    /// to the queue. The host waits this long plus five seconds before it gives up on a clean stop.
    /// </summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Larger requests are refused with 413.</summary>
    public int MaxIdsPerRequest { get; set; } = 100_000;

    /// <summary>
    /// Backpressure, off when unset: when the queue, with a new request's ids, would take longer than this
    /// to drain at the rate limit, <c>POST /ingest</c> answers 429 with the Retry-After that brings it back under.
    /// </summary>
    public TimeSpan? MaxBacklog { get; set; }

    /// <summary>
    /// The status of an accepted <c>POST /ingest</c>: 202 (the default, as the work is done later), or 200
    /// or 201 for clients that insist on one of those; the body and the <c>Location</c> header are the same.
    /// </summary>
    public int AcceptedStatusCode { get; set; } = StatusCodes.Status202Accepted;

    /// <summary>
    /// How long finished work is kept: an ingestion whose last id reached a final state longer ago than
    /// this is deleted with its results and its part of the window log (see <see cref="Scheduling.Retention"/>).
    /// Work that waits, runs or retries is never deleted, whatever its age.
    /// </summary>
    public TimeSpan Retention { get; set; } = Scheduling.Retention.Default;

    /// <summary>How long an <c>Idempotency-Key</c> is remembered: a retried POST within it creates nothing new.</summary>
    public TimeSpan IdempotencyKeyLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// The largest request body accepted, derived from <see cref="MaxIdsPerRequest"/>: room for every id
    /// written with generous whitespace (24 bytes an id) plus 64 KiB for the rest of the document.
    /// </summary>
    public long MaxRequestBytes => (MaxIdsPerRequest * 24L) + (64 * 1024);
}

internal sealed class IngestionOptionsValidator : IValidateOptions<IngestionOptions>
{
    public ValidateOptionsResult Validate(string? name, IngestionOptions options)
    {
        var failures = new List<string>();
        if (Scheduling.RateLimit.BatchSizeProblem(options.BatchSize) is { } batchSize)
        {
            failures.Add($"Ingestion:BatchSize {batchSize}.");
        }

        if (Scheduling.RateLimit.WindowProblem(options.Window) is { } window)
        {
            failures.Add($"Ingestion:Window {window}.");
        }

        // A zero poll would be a busy loop against the database.
        if (options.PollInterval < TimeSpan.FromMilliseconds(10) || options.PollInterval > TimeSpan.FromMinutes(10))
        {
            failures.Add($"Ingestion:PollInterval must be between 00:00:00.010 and 00:10:00, such as 00:00:01 (got {options.PollInterval}).");
        }

        // Shorter leases would expire between heartbeats on a slow database round trip.
        if (options.Lease < TimeSpan.FromSeconds(1) || options.Lease > TimeSpan.FromHours(1))
        {
            failures.Add($"Ingestion:Lease must be between 00:00:01 and 01:00:00, such as 00:00:10 (got {options.Lease}).");
        }

        if (options.ShutdownTimeout < TimeSpan.Zero || options.ShutdownTimeout > TimeSpan.FromMinutes(5))
        {
            failures.Add($"Ingestion:ShutdownTimeout must be between 00:00:00 and 00:05:00 (got {options.ShutdownTimeout}).");
        }

        if (options.MaxIdsPerRequest is < 1 or > 10_000_000)
        {
            failures.Add($"Ingestion:MaxIdsPerRequest must be between 1 and 10000000 (got {options.MaxIdsPerRequest}).");
        }

        if (options.MaxBacklog is { } backlog && (backlog < options.Window || backlog > TimeSpan.FromDays(365)))
        {
            failures.Add($"Ingestion:MaxBacklog must be at least Ingestion:Window ({options.Window}) and at most 365.00:00:00, or unset to turn backpressure off (got {backlog}).");
        }

        if (options.AcceptedStatusCode is not (StatusCodes.Status200OK or StatusCodes.Status201Created or StatusCodes.Status202Accepted))
        {
            failures.Add($"Ingestion:AcceptedStatusCode must be 202 (the default), 200 or 201 (got {options.AcceptedStatusCode}).");
        }

        if (options.IdempotencyKeyLifetime < TimeSpan.FromMinutes(1) || options.IdempotencyKeyLifetime > TimeSpan.FromDays(30))
        {
            failures.Add($"Ingestion:IdempotencyKeyLifetime must be between 00:01:00 and 30.00:00:00 (got {options.IdempotencyKeyLifetime}).");
        }

        if (Scheduling.Retention.Problem(options.Retention) is { } retention)
        {
            failures.Add($"Ingestion:Retention {retention}.");
        }
        else if (options.IdempotencyKeyLifetime > options.Retention)
        {
            // A remembered key would answer with an ingestion the sweeper has deleted.
            failures.Add($"Ingestion:IdempotencyKeyLifetime ({options.IdempotencyKeyLifetime:c}) must not be longer than Ingestion:Retention ({options.Retention:c}): a retried POST would be answered with an ingestion already deleted.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
