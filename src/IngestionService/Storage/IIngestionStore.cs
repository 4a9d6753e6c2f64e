using IngestionService.Ingest;

namespace IngestionService.Storage;

/// <summary>
/// The durable record of every ingestion and every window, and the only source of truth for the order
/// of pending ids. Each operation is one transaction; the operations are shaped around what the
/// dispatcher and the endpoints do, not around tables.
/// </summary>
public interface IIngestionStore
{
    /// <summary>
    /// Creates or upgrades the schema. A store only this process writes also hands the ids of windows a
    /// dead process left running back to the queue; a shared store does that when their lease expires.
    /// </summary>
    Task InitializeAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Stores a new ingestion. When this returns, the ingestion is committed and survives a crash. A shared
    /// store stamps the created time on its own clock, so that instances with skewed clocks order alike.
    /// With an idempotency key, the key is stored in the same transaction; a key already stored (and not
    /// expired) creates nothing and answers the ingestion it created, or a conflict if the request differed.
    /// </summary>
    Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken);

    /// <summary>
    /// The ingestion a live idempotency key stands for, and the hash of the request it came with; null when
    /// the key is unknown or expired. A shared store judges expiry on its own clock, not <paramref name="now"/>.
    /// </summary>
    Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// How often a dispatcher must ask <see cref="ClaimWindowAsync"/> again on its own while it has nothing
    /// to do, because other processes add work and finish windows it hears nothing about; null when only
    /// this process writes to the store, so the in-process wake-up signal is all it needs.
    /// </summary>
    TimeSpan? PollInterval { get; }

    /// <summary>
    /// The rate limiter and the queue in one transaction. Admits a window only if no other window is
    /// running (or the running one's lease has expired: it is then abandoned and its ids requeued) and the
    /// newest window in the log started (and, with <see cref="WindowSpacing.FromFinish"/>, finished) at least <paramref name="spacing"/> ago; it then takes up to
    /// <paramref name="maxIds"/> next ids in the global order (priority, created time, arrival sequence,
    /// position) into a new running window. Ids handed back by an abandoned window keep their original
    /// place in that order. A store only this process writes reads time from <paramref name="now"/>; a
    /// shared store uses its own (the database's) clock so that hosts with skewed clocks agree.
    /// </summary>
    /// <remarks>
    /// Ids waiting for a retry are eligible only from their next-attempt time, and no window is admitted
    /// while the upstream's pause (set by <see cref="CompleteWindowAsync"/>) lasts.
    /// </remarks>
    /// <returns>The window, or when to ask again (like a rate-limiter lease's RetryAfter), or neither when nothing waits.</returns>
    Task<WindowClaim> ClaimWindowAsync(DateTimeOffset now, int maxIds, WindowSpacing spacing, CancellationToken cancellationToken);

    /// <summary>
    /// Stores what each call of a running window came to and marks the window completed; throws if the
    /// window is no longer running (completed already, or taken back after its lease expired). Succeeded
    /// and failed ids are final; ids to retry go back to the queue at their original place, eligible
    /// after their delay; a pause stops every window until it ends. A shared store stamps the finish
    /// (and the times derived from it) on its own clock, like the start.
    /// </summary>
    Task CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken);

    /// <summary>Marks a running window abandoned and puts its ids back in the queue at their original place.</summary>
    Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken);

    /// <summary>Everything needed to report an ingestion's status, read in one consistent snapshot; null if unknown.</summary>
    Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken);

    /// <summary>
    /// What the upstream answered for the ids of an ingestion that have been called at least once, by
    /// position from <paramref name="afterPosition"/> (exclusive); null if the ingestion is unknown.
    /// </summary>
    Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken);

    /// <summary>The end of the newest pause the upstream asked for (429 / Retry-After), past or not; null if it never did.</summary>
    Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken);

    /// <summary>The newest windows, newest first.</summary>
    Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken);

    /// <summary>The newest ingestions, newest first (by arrival), with their progress counters; O(limit).</summary>
    Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, CancellationToken cancellationToken);

    /// <summary>How many ids wait, by priority.</summary>
    Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken);

    /// <summary>Throws unless the store answers a query now, on a fresh connection (the readiness probe).</summary>
    Task ProbeAsync(CancellationToken cancellationToken);
}

/// <summary>
/// How far apart windows must be: <see cref="Window"/> after the newest window's start, and with
/// <see cref="FromFinish"/> also after its finish (its last answer).
/// </summary>
public readonly record struct WindowSpacing(TimeSpan Window, bool FromFinish = false)
{
    public static implicit operator WindowSpacing(TimeSpan window) => FromTimeSpan(window);

    public static WindowSpacing FromTimeSpan(TimeSpan window) => new(window);
}

/// <summary>An accepted request, as it is stored.</summary>
public sealed record NewIngestion(Guid Id, Priority Priority, DateTimeOffset CreatedAt, int BatchSize, int[] Ids, IdempotencyKey? Idempotency = null);

/// <summary>A client's <c>Idempotency-Key</c>, the hash of the request it came with, and when it may be forgotten.</summary>
public sealed record IdempotencyKey(string Key, byte[] RequestHash, DateTimeOffset ExpiresAt);

public enum EnqueueOutcome
{
    /// <summary>A new ingestion was stored.</summary>
    Created,

    /// <summary>The key was seen before with the same request: nothing new, the earlier ingestion is answered.</summary>
    Replayed,

    /// <summary>The key was seen before with a different request: nothing stored.</summary>
    KeyConflict,
}

public readonly record struct EnqueueResult(Guid IngestionId, EnqueueOutcome Outcome);

/// <summary>
/// One id taken into a window. <see cref="PriorAttempts"/> counts the calls already made for it, of which
/// <see cref="PriorThrottled"/> were refused for quota (429) and do not count as its failures.
/// </summary>
public readonly record struct WindowItem(long IngestionSeq, Guid IngestionId, Priority Priority, int Position, int Id, int PriorAttempts = 0, int PriorThrottled = 0);

[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<FetchState>))]
public enum FetchState
{
    [System.Text.Json.Serialization.JsonStringEnumMemberName("succeeded")]
    Succeeded = 0,

    /// <summary>Failed for now; back in the queue until its next attempt.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("retrying")]
    Retrying = 1,

    /// <summary>Failed for good: attempts exhausted, or an answer that another try would not change.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("failed")]
    Failed = 2,
}

/// <summary>
/// What one call came to. <see cref="Attempts"/> and <see cref="Throttled"/> are the id's totals including
/// this call; <see cref="RetryAfter"/> is the delay before a <see cref="FetchState.Retrying"/> id may be
/// called again, from the window's finish.
/// </summary>
public sealed record FetchOutcome(FetchState State, int? HttpStatus, string? Body, bool BodyTruncated, string? Error, int Attempts, int Throttled, TimeSpan? RetryAfter);

/// <summary>
/// A finished window: one outcome per item, in the items' order; <see cref="Pause"/>, when the upstream
/// said its quota is gone, holds every window back for that long from the finish.
/// </summary>
public sealed record WindowOutcome(IReadOnlyList<FetchOutcome> Fetches, DateTimeOffset FinishedAt, TimeSpan? Pause = null);

/// <summary>The stored answer for one id of an ingestion: its latest call's outcome.</summary>
public sealed record IdResult(
    int Position,
    int Id,
    FetchState State,
    int? HttpStatus,
    string? Body,
    bool BodyTruncated,
    int Attempts,
    string? Error,
    DateTimeOffset FetchedAt,
    DateTimeOffset? NextAttemptAt);

/// <summary>
/// The answer of <see cref="IIngestionStore.ClaimWindowAsync"/>: a window to run, or the time until the
/// limiter may admit one (another window still runs, the last one started less than a window ago, or the
/// upstream asked for a pause), or neither when no id is due. <see cref="NextDueIn"/> says when ids now
/// waiting out a retry delay become due; unlike <see cref="RetryAfter"/>, new work may come sooner.
/// </summary>
public readonly record struct WindowClaim(ClaimedWindow? Window, TimeSpan? RetryAfter, TimeSpan? NextDueIn = null)
{
    public static WindowClaim NothingWaits => default;

    public static WindowClaim Acquired(ClaimedWindow window) => new(window, null);

    /// <summary>Never less than a millisecond, so a caller that waits and asks again cannot spin.</summary>
    public static WindowClaim NotYet(TimeSpan retryAfter) => new(null, retryAfter > MinimumRetry ? retryAfter : MinimumRetry);

    /// <summary>Nothing is due now; ids waiting for a retry are due after <paramref name="dueIn"/>.</summary>
    public static WindowClaim NothingDueFor(TimeSpan dueIn) => new(null, null, dueIn > MinimumRetry ? dueIn : MinimumRetry);

    private static TimeSpan MinimumRetry => TimeSpan.FromMilliseconds(1);
}

/// <summary>A window the dispatcher owns until it completes or abandons it.</summary>
public sealed record ClaimedWindow(long Seq, DateTimeOffset StartedAt, IReadOnlyList<WindowItem> Items);

public enum WindowState
{
    Running = 0,
    Completed = 1,
    Abandoned = 2,
}

/// <summary>A run of consecutive positions of one ingestion that one window took.</summary>
public readonly record struct WindowSpan(int FirstPosition, int Count, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, WindowState State);

/// <summary>
/// An ingestion and its progress, as the status endpoint needs it. <see cref="IdsAhead"/> counts the ids
/// that wait ahead of this ingestion's first unstarted id in the global order (its own requeued ones
/// included); zero once everything has started.
/// </summary>
public sealed record IngestionSnapshot(
    Guid Id,
    Priority Priority,
    DateTimeOffset CreatedAt,
    int BatchSize,
    int[] Ids,
    int Started,
    int Completed,
    IReadOnlyList<WindowSpan> Spans,
    IReadOnlyList<int> Requeued,
    long IdsAhead = 0,
    IReadOnlyList<int>? FailedPositions = null,
    DateTimeOffset? PausedUntil = null)
{
    /// <summary>Positions whose ids failed for good (their batch is still final); empty while none did.</summary>
    public IReadOnlyList<int> Failed => FailedPositions ?? [];
}

/// <summary>
/// An ingestion's counters without its ids or window spans: [0, <see cref="Started"/>) have been handed to
/// a window and <see cref="Completed"/> positions have a final result, <see cref="Failed"/> of them a failure.
/// </summary>
public sealed record IngestionSummary(Guid Id, Priority Priority, DateTimeOffset CreatedAt, int BatchSize, int Total, int Started, int Completed, int Failed = 0);

/// <summary>How many ids wait, by priority, ids handed back by abandoned windows included.</summary>
public readonly record struct QueueDepth(long High, long Medium, long Low)
{
    public long Total => High + Medium + Low;

    public long Of(Priority priority) => priority switch
    {
        Priority.High => High,
        Priority.Medium => Medium,
        _ => Low,
    };
}

/// <summary>One entry of the window log; <see cref="PausedUntil"/> when its answers paused the upstream.</summary>
public sealed record WindowRecord(long Seq, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, WindowState State, IReadOnlyList<WindowRecordItem> Items, DateTimeOffset? PausedUntil = null);

/// <summary>The ids one window took from one ingestion.</summary>
public sealed record WindowRecordItem(Guid IngestionId, Priority Priority, int FirstPosition, int[] Ids);
