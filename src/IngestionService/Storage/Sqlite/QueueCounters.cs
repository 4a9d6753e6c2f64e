using IngestionService.Ingest;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// Per-priority running totals of the queue, kept in memory by the store's single writer and loaded once
/// at start: ids ever enqueued, ids started for the first time, and ids handed back by abandoned windows.
/// They make the queue's depth, and the ids waiting ahead of an ingestion, cost the same at any depth.
/// Only valid because one process writes the file; read without the write lock, so a reader may see a
/// total one commit old.
/// </summary>
internal sealed class QueueCounters
{
    private readonly long[] _enqueued = new long[3];
    private readonly long[] _started = new long[3];
    private readonly long[] _requeued = new long[3];

    public long Enqueued(Priority priority) => Volatile.Read(ref _enqueued[(int)priority]);

    public QueueDepth Depth => new(Waiting(Priority.High), Waiting(Priority.Medium), Waiting(Priority.Low));

    public long Waiting(Priority priority) =>
        Volatile.Read(ref _enqueued[(int)priority]) - Volatile.Read(ref _started[(int)priority]) + Volatile.Read(ref _requeued[(int)priority]);

    /// <summary>
    /// Ids waiting ahead of the first unstarted id of an ingestion: everything waiting at a higher
    /// priority, the ids of its own priority enqueued before it that have not started (within a priority
    /// ids start in order), and the handed-back ids of its priority at or before it.
    /// </summary>
    public long IdsAhead(Priority priority, long idsBefore, long requeuedAtOrBefore)
    {
        long ahead = 0;
        for (var higher = Priority.High; higher < priority; higher++)
        {
            ahead += Waiting(higher);
        }

        return ahead + Math.Max(0, idsBefore - Volatile.Read(ref _started[(int)priority])) + requeuedAtOrBefore;
    }

    public void Set(Priority priority, long enqueued, long started, long requeued)
    {
        Volatile.Write(ref _enqueued[(int)priority], enqueued);
        Volatile.Write(ref _started[(int)priority], started);
        Volatile.Write(ref _requeued[(int)priority], requeued);
    }

    public void AddEnqueued(Priority priority, long count) => Interlocked.Add(ref _enqueued[(int)priority], count);

    public void AddStarted(Priority priority, long count) => Interlocked.Add(ref _started[(int)priority], count);

    public void AddRequeued(Priority priority, long count) => Interlocked.Add(ref _requeued[(int)priority], count);
}
