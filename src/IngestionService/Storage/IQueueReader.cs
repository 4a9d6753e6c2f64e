namespace IngestionService.Storage;

/// <summary>
/// The read side: what the status endpoint, the dashboard and the metrics read. Nothing here writes, and
/// each read is one consistent snapshot.
/// </summary>
public interface IQueueReader
{
    /// <summary>Everything needed to report an ingestion's status, read in one consistent snapshot; null if unknown.</summary>
    Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken);

    /// <summary>
    /// What the upstream answered for the ids of an ingestion that have been called at least once, by
    /// position from <paramref name="afterPosition"/> (exclusive); null if the ingestion is unknown.
    /// </summary>
    Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken);

    /// <summary>The end of the newest pause the upstream asked for (429 / Retry-After), past or not; null if it never did.</summary>
    Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken);

    /// <summary>The operator's pause of the queue, or null while it runs.</summary>
    Task<QueuePause?> GetQueuePauseAsync(CancellationToken cancellationToken);

    /// <summary>The newest changes of the rate limit, newest first; the first is in force (none: the configured limit).</summary>
    Task<IReadOnlyList<LimitChange>> GetLimitChangesAsync(int limit, CancellationToken cancellationToken);

    /// <summary>The newest windows, newest first.</summary>
    Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken);

    /// <summary>
    /// The newest ingestions that <paramref name="filter"/> matches, newest first (by arrival), with their
    /// progress counters; O(limit) unfiltered, a scan back from the newest until <paramref name="limit"/> match otherwise.
    /// </summary>
    Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, IngestionFilter filter, CancellationToken cancellationToken);

    /// <summary>How many ids wait, by priority.</summary>
    Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken);

    /// <summary>Throws unless the store answers a query now, on a fresh connection (the readiness probe).</summary>
    Task ProbeAsync(CancellationToken cancellationToken);

    /// <summary>The bytes the store takes on disk: the SQLite file with its write-ahead log, or the PostgreSQL database.</summary>
    Task<long> GetStoreBytesAsync(CancellationToken cancellationToken);

    /// <summary>The trace contexts (W3C <c>traceparent</c>) their submissions were made under, for those that have one.</summary>
    Task<IReadOnlyList<string>> GetTraceParentsAsync(IReadOnlyCollection<Guid> ingestionIds, CancellationToken cancellationToken);
}
