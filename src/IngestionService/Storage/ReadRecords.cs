using IngestionService.Ingest;

namespace IngestionService.Storage;

public enum WindowState
{
    Running = 0,
    Completed = 1,
    Abandoned = 2,
}

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
    DateTimeOffset? PausedUntil = null,
    bool QueuePaused = false,
    Cancellation? Cancel = null,
    DateTimeOffset? NotAfter = null)
{
    /// <summary>Positions whose ids failed for good (their batch is still final); empty while none did.</summary>
    public IReadOnlyList<int> Failed => FailedPositions ?? [];

    /// <summary>Ids cancelled before they started: the tail from <see cref="Cancellation.From"/>.</summary>
    public int CancelledIds => Cancel is { } cancel ? Ids.Length - cancel.From : 0;

    /// <summary>Whether ids of it still wait to be handed to a window for the first time.</summary>
    public bool Waiting => Cancel is null && Started < Ids.Length;
}

/// <summary>
/// An ingestion's counters without its ids or window spans: [0, <see cref="Started"/>) have been handed to
/// a window and <see cref="Completed"/> positions have a final result, <see cref="Failed"/> of them a failure;
/// <see cref="Cancelled"/> ids (the tail) were cancelled before they started.
/// </summary>
public sealed record IngestionSummary(Guid Id, Priority Priority, DateTimeOffset CreatedAt, int BatchSize, int Total, int Started, int Completed, int Failed = 0, int Cancelled = 0);

/// <summary>Which recent ingestions to list: any of a priority, in a status, or with failed ids; null or false matches all.</summary>
public sealed record IngestionFilter(Priority? Priority = null, ProgressStatus? Status = null, bool FailedOnly = false)
{
    public static IngestionFilter None { get; } = new();
}

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

    /// <summary>Ids waiting at <paramref name="priority"/> and every more urgent one: all of them start before its last id.</summary>
    public long UpTo(Priority priority) => priority switch
    {
        Priority.High => High,
        Priority.Medium => High + Medium,
        _ => Total,
    };
}

/// <summary>
/// One entry of the window log; <see cref="PausedUntil"/> when its answers paused the upstream; <see cref="Limit"/>,
/// the limit in force when it started (null for windows stored before limits were recorded).
/// </summary>
public sealed record WindowRecord(long Seq, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, WindowState State, IReadOnlyList<WindowRecordItem> Items, DateTimeOffset? PausedUntil = null, Scheduling.RateLimit? Limit = null);

/// <summary>The ids one window took from one ingestion; <see cref="Marks"/>, once it completed, what each call came to.</summary>
public sealed record WindowRecordItem(Guid IngestionId, Priority Priority, int FirstPosition, int[] Ids, IReadOnlyList<CallMark>? Marks = null);

/// <summary>What one call of a window came to, as the window log keeps it (one byte per id).</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<CallMark>))]
public enum CallMark : byte
{
    [System.Text.Json.Serialization.JsonStringEnumMemberName("succeeded")]
    Succeeded = 0,

    /// <summary>The call failed; the id waits for another attempt.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("retrying")]
    Retrying = 1,

    /// <summary>The call failed and the id will not be called again.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("failed")]
    Failed = 2,

    /// <summary>The upstream refused the call for quota (429, or 503 with Retry-After); the id is called again after the pause.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("throttled")]
    Throttled = 3,
}
