using IngestionService.Ingest;

namespace IngestionService.Storage;

/// <summary>
/// One change of the rate limit: an override, or (<see cref="Limit"/> null) the return to the configured
/// limit. <see cref="Seq"/> orders the changes: the newest is in force.
/// </summary>
public sealed record LimitChange(long Seq, DateTimeOffset ChangedAt, Scheduling.RateLimit? Limit);

/// <summary>An operator's pause of the queue: since when, and why (null when no reason was given).</summary>
public sealed record QueuePause(DateTimeOffset PausedAt, string? Reason);

/// <summary>
/// An accepted request, as it is stored; ids not started by <see cref="NotAfter"/> expire. With a
/// <see cref="CallbackUrl"/>, the transaction that makes it final writes its event to the outbox, linking
/// to <see cref="StatusUrl"/>.
/// </summary>
public sealed record NewIngestion(Guid Id, Priority Priority, DateTimeOffset CreatedAt, int BatchSize, int[] Ids, IdempotencyKey? Idempotency = null, DateTimeOffset? NotAfter = null)
{
    public Uri? CallbackUrl { get; init; }

    public string? StatusUrl { get; init; }

    /// <summary>The W3C trace context (<c>traceparent</c>) of the submitting request, when tracing is on.</summary>
    public string? TraceParent { get; init; }
}

/// <summary>Why an ingestion's unstarted ids were cancelled; the numbers are stored.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<CancelReason>))]
public enum CancelReason
{
    /// <summary>POST /ingestions/{id}/cancel.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("requested")]
    Requested = 0,

    /// <summary>Its <c>not_after</c> passed before they started.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("expired")]
    Expired = 1,
}

/// <summary>
/// A cancel of an ingestion's unstarted ids: positions [<see cref="From"/>, total) were never handed to a
/// window and never will be; the ones before finish as they would have.
/// </summary>
public sealed record Cancellation(int From, DateTimeOffset At, CancelReason Reason);

/// <summary>What <see cref="IQueueStore.ReprioritiseAsync"/> did.</summary>
public enum ReprioritiseOutcome
{
    /// <summary>No such ingestion.</summary>
    Unknown,

    /// <summary>Its waiting ids moved to the new priority.</summary>
    Moved,

    /// <summary>It already has that priority: nothing changes.</summary>
    Unchanged,

    /// <summary>None of its ids waits (all started or cancelled, none waiting for a retry): nothing to move.</summary>
    NothingWaits,
}

/// <summary>What <see cref="IQueueStore.CancelAsync"/> did.</summary>
public enum CancelOutcome
{
    /// <summary>No such ingestion.</summary>
    Unknown,

    /// <summary>Its unstarted ids are cancelled now.</summary>
    Cancelled,

    /// <summary>It was cancelled (or expired) before: nothing changes.</summary>
    AlreadyCancelled,

    /// <summary>Every id has been handed to a window: nothing is left to cancel.</summary>
    NothingToCancel,
}

/// <summary>A client's <c>Idempotency-Key</c>, the hash of the request it came with, and when it may be forgotten.</summary>
public sealed record IdempotencyKey(string Key, byte[] RequestHash, DateTimeOffset ExpiresAt)
{
    /// <summary>Expired keys swept out with every new key, so the table stays bounded without a sweeper of its own.</summary>
    public const int SweptPerNewKey = 16;
}

public enum EnqueueOutcome
{
    /// <summary>A new ingestion was stored.</summary>
    Created,

    /// <summary>The key was seen before with the same request: nothing new, the earlier ingestion is answered.</summary>
    Replayed,

    /// <summary>The key was seen before with a different request: nothing stored.</summary>
    KeyConflict,
}

public readonly record struct EnqueueResult(Guid IngestionId, EnqueueOutcome Outcome)
{
    /// <summary>What a live key stored with <paramref name="storedHash"/> answers a request with <paramref name="requestHash"/>.</summary>
    public static EnqueueResult Earlier(Guid ingestionId, ReadOnlySpan<byte> storedHash, ReadOnlySpan<byte> requestHash) =>
        new(ingestionId, storedHash.SequenceEqual(requestHash) ? EnqueueOutcome.Replayed : EnqueueOutcome.KeyConflict);
}

/// <summary>
/// One id taken into a window. <see cref="PriorAttempts"/> counts the calls already made for it, of which
/// <see cref="PriorThrottled"/> were refused for quota (429) and do not count as its failures.
/// </summary>
public readonly record struct WindowItem(long IngestionSeq, Guid IngestionId, Priority Priority, int Position, int Id, int PriorAttempts = 0, int PriorThrottled = 0);

/// <summary>A window the dispatcher owns until it completes or abandons it.</summary>
public sealed record ClaimedWindow(long Seq, DateTimeOffset StartedAt, IReadOnlyList<WindowItem> Items)
{
    /// <summary>
    /// Fires once this instance may no longer hold the window (on a shared store: its lease may have
    /// expired, so another instance could take it back): no call of the window may start after, and the
    /// calls in flight are cancelled. Never fires on a store only this process writes.
    /// </summary>
    public CancellationToken Lost { get; init; }
}

/// <summary>
/// The answer of <see cref="IQueueStore.ClaimWindowAsync"/>: a window to run, or the time until the
/// limiter may admit one (another window still runs, the last one started less than a window ago, or the
/// upstream asked for a pause), or neither when no id is due. <see cref="NextDueIn"/> says when ids now
/// waiting out a retry delay become due; unlike <see cref="RetryAfter"/>, new work may come sooner.
/// </summary>
public readonly record struct WindowClaim(ClaimedWindow? Window, TimeSpan? RetryAfter, TimeSpan? NextDueIn = null)
{
    /// <summary>Ids this claim cancelled because their ingestion's <c>not_after</c> had passed.</summary>
    public int Expired { get; init; }

    /// <summary>The operator's override of the limit that this claim read and applied, or null when the configured limit is in force.</summary>
    public Scheduling.RateLimit? Override { get; init; }

    /// <summary>The <see cref="LimitChange.Seq"/> of the change in force that this claim read (0: none ever), so a newer one is never replaced by it.</summary>
    public long LimitVersion { get; init; }

    public static WindowClaim NothingWaits => default;

    /// <summary>The queue is paused: like nothing waiting, the dispatcher waits for a wake-up (the resume) or, on a shared store, its next poll.</summary>
    public static WindowClaim Paused => default;

    /// <summary>What a claim answers when the limiter refused: held while paused, otherwise ask again after its wait.</summary>
    public static WindowClaim Refused(Scheduling.Admission admission) => admission.Held ? Paused : NotYet(admission.RetryAfter);

    public static WindowClaim Acquired(ClaimedWindow window) => new(window, null);

    /// <summary>Never less than a millisecond, so a caller that waits and asks again cannot spin.</summary>
    public static WindowClaim NotYet(TimeSpan retryAfter) => new(null, retryAfter > MinimumRetry ? retryAfter : MinimumRetry);

    /// <summary>Nothing is due now; ids waiting for a retry are due after <paramref name="dueIn"/>.</summary>
    public static WindowClaim NothingDueFor(TimeSpan dueIn) => new(null, null, dueIn > MinimumRetry ? dueIn : MinimumRetry);

    private static TimeSpan MinimumRetry => TimeSpan.FromMilliseconds(1);
}

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
public sealed record WindowOutcome(IReadOnlyList<FetchOutcome> Fetches, TimeSpan? Pause = null);
