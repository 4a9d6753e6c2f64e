using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Scheduling;

/// <summary>
/// Per-priority running totals of the queue: ids ever enqueued, ids started for the first time, and ids
/// handed back (by an abandoned window or for a retry) that wait again. A backend that sees every write
/// keeps them as it commits, so the depth and the ids ahead cost the same at any depth. A reader may
/// see a total one commit old.
/// </summary>
public sealed class QueueTotals
{
    private readonly long[] _enqueued = new long[3];
    private readonly long[] _started = new long[3];
    private readonly long[] _requeued = new long[3];

    public long Enqueued(Priority priority) => Volatile.Read(ref _enqueued[(int)priority]);

    /// <summary>Ids of the priority started for the first time, and cancelled ones (they left the queue the same way).</summary>
    public long Started(Priority priority) => Volatile.Read(ref _started[(int)priority]);

    public QueueDepth Depth => new(Waiting(Priority.High), Waiting(Priority.Medium), Waiting(Priority.Low));

    public long Waiting(Priority priority) =>
        Volatile.Read(ref _enqueued[(int)priority]) - Volatile.Read(ref _started[(int)priority]) + Volatile.Read(ref _requeued[(int)priority]);

    /// <summary>
    /// Ids ahead of an ingestion's first unstarted id, for an ingestion that had <paramref name="idsBefore"/>
    /// ids of its priority enqueued before it and has <paramref name="requeuedAtOrBefore"/> handed-back ids
    /// of its priority at or before it. Within a priority ids start in order, so the started total tells
    /// how many of those before it have started. Cancelled ids count as started; those of ingestions
    /// behind this one were never ahead of it, so the caller adds them to <paramref name="idsBefore"/>.
    /// A move to another priority recounts <paramref name="idsBefore"/> so the same holds.
    /// </summary>
    public long IdsAhead(Priority priority, long idsBefore, long requeuedAtOrBefore)
    {
        long unstartedAhead = 0, requeuedAhead = requeuedAtOrBefore;
        for (var higher = Priority.High; higher < priority; higher++)
        {
            unstartedAhead += Volatile.Read(ref _enqueued[(int)higher]) - Volatile.Read(ref _started[(int)higher]);
            requeuedAhead += Volatile.Read(ref _requeued[(int)higher]);
        }

        return QueuePosition.IdsAhead(unstartedAhead + Math.Max(0, idsBefore - Volatile.Read(ref _started[(int)priority])), requeuedAhead);
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

    /// <summary>An ingestion of <paramref name="total"/> ids, <paramref name="started"/> of them started and <paramref name="requeued"/> waiting again, moved to another priority.</summary>
    public void Move(Priority from, Priority to, long total, long started, long requeued)
    {
        AddEnqueued(from, -total);
        AddStarted(from, -started);
        AddRequeued(from, -requeued);
        AddEnqueued(to, total);
        AddStarted(to, started);
        AddRequeued(to, requeued);
    }
}

/// <summary>Where an ingestion stands in the global order.</summary>
public static class QueuePosition
{
    /// <summary>
    /// The ids that start before an ingestion's first unstarted id: every unstarted id ahead of it in the
    /// global order, and every handed-back id at or before it (its own included, as they go first).
    /// </summary>
    public static long IdsAhead(long unstartedAhead, long requeuedAtOrBefore) => unstartedAhead + requeuedAtOrBefore;
}
