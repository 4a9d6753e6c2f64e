using IngestionService.Scheduling;

namespace IngestionService.Storage;

/// <summary>
/// The write path: what the submit path and the dispatcher do to the queue. Each operation is one
/// transaction. Every time a backend stamps or compares comes from its own clock (the process's for a
/// store only this process writes, the database's for a shared one), so instances with skewed clocks
/// agree; the rules it applies are the shared ones in <c>Scheduling/</c>.
/// </summary>
public interface IQueueStore
{
    /// <summary>
    /// Creates or upgrades the schema. A store only this process writes also hands the ids of windows a
    /// dead process left running back to the queue; a shared store does that when their lease expires.
    /// </summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Stores a new ingestion. When this returns, the ingestion is committed and survives a crash. A shared
    /// store stamps the created time on its own clock. With an idempotency key, the key is stored in the
    /// same transaction; a key already stored (and not expired) creates nothing and answers the ingestion
    /// it created, or a conflict if the request differed.
    /// </summary>
    Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken);

    /// <summary>The ingestion a live idempotency key stands for, judged against the hash of this request; null when the key is unknown or expired.</summary>
    Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, CancellationToken cancellationToken);

    /// <summary>
    /// How often a dispatcher must ask <see cref="ClaimWindowAsync"/> again on its own while it has nothing
    /// to do, because other processes add work and finish windows it hears nothing about; null when only
    /// this process writes to the store, so the in-process wake-up signal is all it needs.
    /// </summary>
    TimeSpan? PollInterval { get; }

    /// <summary>
    /// The rate limiter and the queue in one transaction: asks <see cref="AdmissionRule"/> with the window
    /// log's facts (a running window whose lease expired is first abandoned and its ids requeued), and if
    /// it admits, takes up to <paramref name="maxIds"/> next ids in the global order (<see cref="QueueOrder"/>)
    /// into a new running window. Ids handed back keep their original place in that order; ids waiting
    /// for a retry are eligible only from their next-attempt time. Admitted, it first expires the waiting
    /// ids whose <c>not_after</c> has passed (<see cref="WindowClaim.Expired"/>), so no call is spent on them.
    /// </summary>
    /// <remarks>
    /// <paramref name="maxIds"/> and <paramref name="spacing"/> are the configured limit; an operator's override
    /// (<see cref="SetLimitAsync"/>), read in the same transaction, replaces both and is returned as <see cref="WindowClaim.Override"/>.
    /// </remarks>
    /// <returns>The window, or when to ask again (like a rate-limiter lease's RetryAfter), or neither when nothing waits.</returns>
    Task<WindowClaim> ClaimWindowAsync(int maxIds, WindowSpacing spacing, CancellationToken cancellationToken);

    /// <summary>
    /// Stores what each call of a running window came to (<see cref="WindowTally"/>) and marks the window
    /// completed; throws if the window is no longer running (completed already, or taken back after its
    /// lease expired). Returns the finish it stamped, from which retry times and the pause count.
    /// </summary>
    Task<DateTimeOffset> CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken);

    /// <summary>Marks a running window abandoned and puts its ids back in the queue at their original place.</summary>
    Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken);

    /// <summary>
    /// Pauses the queue: no window is admitted, by any process, until <see cref="ResumeQueueAsync"/>; a
    /// window in flight finishes. Pausing a paused queue keeps its start and replaces its reason only when
    /// <paramref name="reason"/> is given. Returns the pause in force.
    /// </summary>
    Task<QueuePause> PauseQueueAsync(string? reason, CancellationToken cancellationToken);

    /// <summary>Ends the pause; false when the queue was not paused (nothing changes).</summary>
    Task<bool> ResumeQueueAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Cancels the ids of an ingestion not yet handed to a window: no window takes them, by any process.
    /// Ids in flight or waiting for a retry finish as they would have. Cancelling a cancelled (or expired)
    /// ingestion changes nothing.
    /// </summary>
    Task<CancelOutcome> CancelAsync(Guid ingestionId, CancellationToken cancellationToken);

    /// <summary>
    /// Stores an operator's override of the rate limit, or with null the return to the configured one. Every
    /// process applies it from its next admission. Returns the change as stored.
    /// </summary>
    Task<LimitChange> SetLimitAsync(Scheduling.RateLimit? limit, CancellationToken cancellationToken);

    /// <summary>
    /// Moves an ingestion's waiting ids (unstarted, or waiting for a retry) to <paramref name="priority"/>:
    /// they keep their created time and arrival order, so they take the place in the new priority that a
    /// request created then would have. Ids in flight finish where they are.
    /// </summary>
    Task<ReprioritiseOutcome> ReprioritiseAsync(Guid ingestionId, Ingest.Priority priority, CancellationToken cancellationToken);

    /// <summary>
    /// One batch of a retention sweep, in one transaction, by <see cref="Retention"/>'s rule: the ingestions
    /// finished before <see cref="PurgeRequest.FinishedBefore"/>, oldest first, with their results and
    /// window-log items, then the windows that rule lets go, then expired idempotency keys. A shared store
    /// lets one process sweep at a time and answers <see cref="PurgeResult.Busy"/> to the others.
    /// </summary>
    Task<PurgeResult> PurgeAsync(PurgeRequest request, CancellationToken cancellationToken);

    /// <summary>A write that changes nothing visible, to tell whether a store that refused writes (a full disk, a read-only database) takes them again; throws while it does not.</summary>
    Task ProbeWriteAsync(CancellationToken cancellationToken);
}
