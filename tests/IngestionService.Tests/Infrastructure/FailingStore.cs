using IngestionService.Storage;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// A real store whose <see cref="CompleteWindowAsync"/> fails a given number of times first, the way a
/// full disk or a lost database connection would; everything else goes straight through.
/// </summary>
public sealed class FailingStore(IIngestionStore inner, int completionFailures) : IIngestionStore
{
    private int _failuresLeft = completionFailures;

    public TimeSpan? PollInterval => inner.PollInterval;

    public Task CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken) =>
        Interlocked.Decrement(ref _failuresLeft) >= 0
            ? throw new IOException("disk I/O error (simulated)")
            : inner.CompleteWindowAsync(window, outcome, cancellationToken);

    public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

    public Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken) => inner.EnqueueAsync(ingestion, cancellationToken);

    public Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, DateTimeOffset now, CancellationToken cancellationToken) =>
        inner.FindIdempotencyKeyAsync(key, requestHash, now, cancellationToken);

    public Task<WindowClaim> ClaimWindowAsync(DateTimeOffset now, int maxIds, WindowSpacing spacing, CancellationToken cancellationToken) =>
        inner.ClaimWindowAsync(now, maxIds, spacing, cancellationToken);

    public Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken) => inner.AbandonWindowAsync(window, cancellationToken);

    public Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken) => inner.GetIngestionAsync(ingestionId, cancellationToken);

    public Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken) =>
        inner.GetResultsAsync(ingestionId, afterPosition, limit, cancellationToken);

    public Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken) => inner.GetPausedUntilAsync(cancellationToken);

    public Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken) => inner.GetRecentWindowsAsync(limit, cancellationToken);

    public Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, CancellationToken cancellationToken) => inner.GetRecentIngestionsAsync(limit, cancellationToken);

    public Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken) => inner.GetQueueDepthAsync(cancellationToken);

    public Task ProbeAsync(CancellationToken cancellationToken) => inner.ProbeAsync(cancellationToken);
}
