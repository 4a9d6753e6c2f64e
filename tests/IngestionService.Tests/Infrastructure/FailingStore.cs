using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// A real store whose <see cref="CompleteWindowAsync"/> fails a given number of times first, the way a
/// full disk or a lost database connection would; and whose first <paramref name="lostLeases"/> claimed
/// windows are lost when <paramref name="lost"/> fires (at once without one), as a shared store's window is
/// when its lease may have expired. Everything else goes straight through.
/// </summary>
public sealed class FailingStore(IQueueStore inner, int completionFailures, int lostLeases = 0, CancellationToken? lost = null) : IQueueStore
{
    private int _failuresLeft = completionFailures;
    private int _leasesToLose = lostLeases;

    public TimeSpan? PollInterval => inner.PollInterval;

    public Task<DateTimeOffset> CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken) =>
        Interlocked.Decrement(ref _failuresLeft) >= 0
            ? throw new IOException("disk I/O error (simulated)")
            : inner.CompleteWindowAsync(window, outcome, cancellationToken);

    public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

    public Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken) => inner.EnqueueAsync(ingestion, cancellationToken);

    public Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, CancellationToken cancellationToken) =>
        inner.FindIdempotencyKeyAsync(key, requestHash, cancellationToken);

    public async Task<WindowClaim> ClaimWindowAsync(int maxIds, WindowSpacing spacing, CancellationToken cancellationToken)
    {
        var claim = await inner.ClaimWindowAsync(maxIds, spacing, cancellationToken);
        if (claim.Window is not { } window || Interlocked.Decrement(ref _leasesToLose) < 0)
        {
            return claim;
        }

        return claim with { Window = window with { Lost = lost ?? new CancellationToken(canceled: true) } };
    }

    public Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken) => inner.AbandonWindowAsync(window, cancellationToken);

    public Task<QueuePause> PauseQueueAsync(string? reason, CancellationToken cancellationToken) => inner.PauseQueueAsync(reason, cancellationToken);

    public Task<bool> ResumeQueueAsync(CancellationToken cancellationToken) => inner.ResumeQueueAsync(cancellationToken);

    public Task<CancelOutcome> CancelAsync(Guid ingestionId, CancellationToken cancellationToken) => inner.CancelAsync(ingestionId, cancellationToken);

    public Task<LimitChange> SetLimitAsync(IngestionService.Scheduling.RateLimit? limit, CancellationToken cancellationToken) => inner.SetLimitAsync(limit, cancellationToken);

    public Task<ReprioritiseOutcome> ReprioritiseAsync(Guid ingestionId, Priority priority, CancellationToken cancellationToken) => inner.ReprioritiseAsync(ingestionId, priority, cancellationToken);

    public Task<IngestionService.Scheduling.PurgeResult> PurgeAsync(IngestionService.Scheduling.PurgeRequest request, CancellationToken cancellationToken) => inner.PurgeAsync(request, cancellationToken);

    public Task ProbeWriteAsync(CancellationToken cancellationToken) => inner.ProbeWriteAsync(cancellationToken);
}
