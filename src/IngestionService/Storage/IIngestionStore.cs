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
    /// </summary>
    Task EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken);

    /// <summary>
    /// How often a dispatcher must ask <see cref="ClaimWindowAsync"/> again on its own while it has nothing
    /// to do, because other processes add work and finish windows it hears nothing about; null when only
    /// this process writes to the store, so the in-process wake-up signal is all it needs.
    /// </summary>
    TimeSpan? PollInterval { get; }

    /// <summary>
    /// The rate limiter and the queue in one transaction. Admits a window only if no other window is
    /// running (or the running one's lease has expired: it is then abandoned and its ids requeued) and the
    /// newest window in the log started at least <paramref name="window"/> ago; it then takes up to
    /// <paramref name="maxIds"/> next ids in the global order (priority, created time, arrival sequence,
    /// position) into a new running window. Ids handed back by an abandoned window keep their original
    /// place in that order. A store only this process writes reads time from <paramref name="now"/>; a
    /// shared store uses its own (the database's) clock so that hosts with skewed clocks agree.
    /// </summary>
    /// <returns>The window, or when to ask again (like a rate-limiter lease's RetryAfter), or neither when nothing waits.</returns>
    Task<WindowClaim> ClaimWindowAsync(DateTimeOffset now, int maxIds, TimeSpan window, CancellationToken cancellationToken);

    /// <summary>
    /// Stores the results of a running window and marks it and its ids completed; throws if the window is
    /// no longer running (completed already, or taken back after its lease expired). A shared store
    /// stamps the finish on its own clock, like the start, rather than <paramref name="finishedAt"/>.
    /// </summary>
    Task CompleteWindowAsync(ClaimedWindow window, IReadOnlyList<string> results, DateTimeOffset finishedAt, CancellationToken cancellationToken);

    /// <summary>Marks a running window abandoned and puts its ids back in the queue at their original place.</summary>
    Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken);

    /// <summary>Everything needed to report an ingestion's status, read in one consistent snapshot; null if unknown.</summary>
    Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken);

    /// <summary>The newest windows, newest first.</summary>
    Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken);

    /// <summary>The newest ingestions, newest first (by arrival), with their progress counters; O(limit).</summary>
    Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, CancellationToken cancellationToken);

    /// <summary>How many ids wait, by priority.</summary>
    Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken);

    /// <summary>Throws unless the store answers a query now, on a fresh connection (the readiness probe).</summary>
    Task ProbeAsync(CancellationToken cancellationToken);
}

/// <summary>An accepted request, as it is stored.</summary>
public sealed record NewIngestion(Guid Id, Priority Priority, DateTimeOffset CreatedAt, int BatchSize, int[] Ids);

/// <summary>One id taken into a window.</summary>
public readonly record struct WindowItem(long IngestionSeq, Guid IngestionId, Priority Priority, int Position, int Id);

/// <summary>
/// The answer of <see cref="IIngestionStore.ClaimWindowAsync"/>: a window to run, or the time until the
/// limiter may admit one (another window still runs, or the last one started less than a window ago),
/// or neither when no id waits.
/// </summary>
public readonly record struct WindowClaim(ClaimedWindow? Window, TimeSpan? RetryAfter)
{
    public static WindowClaim NothingWaits => default;

    public static WindowClaim Acquired(ClaimedWindow window) => new(window, null);

    /// <summary>Never less than a millisecond, so a caller that waits and asks again cannot spin.</summary>
    public static WindowClaim NotYet(TimeSpan retryAfter) => new(null, retryAfter > MinimumRetry ? retryAfter : MinimumRetry);

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
    long IdsAhead = 0);

/// <summary>
/// An ingestion's counters without its ids or window spans: [0, <see cref="Started"/>) have been handed to
/// a window and <see cref="Completed"/> positions have a stored result.
/// </summary>
public sealed record IngestionSummary(Guid Id, Priority Priority, DateTimeOffset CreatedAt, int BatchSize, int Total, int Started, int Completed);

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

/// <summary>One entry of the window log.</summary>
public sealed record WindowRecord(long Seq, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, WindowState State, IReadOnlyList<WindowRecordItem> Items);

/// <summary>The ids one window took from one ingestion.</summary>
public sealed record WindowRecordItem(Guid IngestionId, Priority Priority, int FirstPosition, int[] Ids);
