using IngestionService.Ingest;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// Status reads served from this instance's memory between the commits that could change them, on the
/// store every instance writes. Every such commit, whoever makes it, tells each session listening on
/// <see cref="Channel"/> (the triggers of <c>Schema/011_status_notify.sql</c>, on every table a status
/// shows, so no write path can forget to): <see cref="Created"/> for new ingestions, <see cref="Changed"/>
/// for anything else. What a notification may have changed starts a new generation, and an answer is kept
/// in the generation it was read in, as in the embedded store's <see cref="Sqlite.SnapshotMemo"/>.
/// An answer is whole (the ids ahead and the pauses as read with it), so it is never mixed with a later state.
/// </summary>
/// <remarks>
/// An answer from memory is given only after a statement on a listening session that began after the
/// read did (<see cref="PostgresStatusReads"/>): PostgreSQL hands a session the notifications of the
/// transactions committed so far before it says the session is ready again, so by then every commit
/// acknowledged before the read began has closed the generations it touched. A status read therefore
/// shows every write acknowledged before it, on any instance, as a read of the database would.
/// </remarks>
internal sealed class PostgresStatusMemo
{
    public const string Channel = "ingestion_status";

    /// <summary>The payload of a commit that created ingestions and changed nothing else a status shows.</summary>
    public const string Created = "created";

    /// <summary>The payload of any other commit that changed what a status shows.</summary>
    public const string Changed = "changed";

    /// <summary>Per generation: answers of one priority, or unknown ids.</summary>
    internal const int MaxEntries = 4096;

    internal const long MaxBytes = 16L * 1024 * 1024;

    /// <summary>The slot of the unknown ids, after one per priority.</summary>
    internal const int Unknown = 3;

    private const int UnknownBytes = 64;

    private readonly MemoGeneration<IngestionSnapshot?>[] _slots = [New(), New(), New(), New()];
    private readonly Lock _hearing = new();

    /// <summary>The generations in force now; a read takes them before it asks the database anything.</summary>
    public Generations Current
    {
        get
        {
            lock (_hearing)
            {
                return new Generations([.. _slots]);
            }
        }
    }

    /// <summary>
    /// A commit told its listeners. New ingestions change what an unknown id finds and the ids ahead of
    /// the waiting ingestions of every priority below theirs (never of the highest), nothing else. Each
    /// generation is closed before its successor is in place, so when this returns no older one is open.
    /// </summary>
    public void Heard(string payload)
    {
        var created = payload == Created;
        lock (_hearing)
        {
            for (var slot = created ? (int)Priority.Medium : (int)Priority.High; slot <= (int)Priority.Low; slot++)
            {
                Renew(slot);
            }

            if (created)
            {
                Renew(Unknown);
            }
        }
    }

    /// <summary>A session starts listening: what was committed before it did was never heard, so nothing read before is served.</summary>
    public void Forget()
    {
        lock (_hearing)
        {
            for (var slot = 0; slot < _slots.Length; slot++)
            {
                Renew(slot);
            }
        }
    }

    private void Renew(int slot)
    {
        _slots[slot].Close();
        _slots[slot] = New();
    }

    private static MemoGeneration<IngestionSnapshot?> New() => new(MaxEntries, MaxBytes);

    /// <summary>Whether two answers show the same: an answer kept twice in one generation must be the same one.</summary>
    internal static bool Same(IngestionSnapshot? a, IngestionSnapshot? b) =>
        ReferenceEquals(a, b) || (a is not null && b is not null
            && (a.Id, a.Priority, a.Started, a.Completed, a.IdsAhead, a.PausedUntil, a.QueuePaused, a.Cancel, a.NotAfter)
               == (b.Id, b.Priority, b.Started, b.Completed, b.IdsAhead, b.PausedUntil, b.QueuePaused, b.Cancel, b.NotAfter)
            && a.Spans.SequenceEqual(b.Spans) && a.Requeued.SequenceEqual(b.Requeued) && a.Failed.SequenceEqual(b.Failed));

    /// <summary>The generations one group of reads took: one per priority, then the unknown ids.</summary>
    internal readonly struct Generations(MemoGeneration<IngestionSnapshot?>[] slots)
    {
        /// <summary>An answer kept for <paramref name="id"/> (null: unknown), and the slot it is in.</summary>
        public bool TryGet(Guid id, out IngestionSnapshot? snapshot, out int slot)
        {
            for (slot = 0; slot < slots.Length; slot++)
            {
                if (slots[slot].TryGet(id, out snapshot))
                {
                    return true;
                }
            }

            (snapshot, slot) = (null, -1);
            return false;
        }

        /// <summary>Whether nothing heard since these were taken touched generation <paramref name="slot"/>.</summary>
        public bool IsOpen(int slot) => slots[slot].IsOpen;

        /// <summary>
        /// Keeps what a statement sent after these were taken read: an ingestion, or null for an unknown id.
        /// Two reads in one generation can still disagree, when a commit is visible but not yet heard; then
        /// the generations holding both answers close, so neither is served again.
        /// </summary>
        public void Keep(Guid id, IngestionSnapshot? snapshot)
        {
            var home = snapshot is null ? Unknown : (int)snapshot.Priority;
            slots[home].Add(id, snapshot, snapshot is null ? UnknownBytes : MemoGeneration.SizeOf(snapshot), Same);

            // Added first (or not, if its generation is closed or full), looked for elsewhere second, so of two
            // reads keeping different answers at once at least one sees the other's.
            for (var slot = 0; slot < slots.Length; slot++)
            {
                if (slot != home && slots[slot].TryGet(id, out var other) && !Same(other, snapshot))
                {
                    slots[slot].Close();
                    slots[home].Close();
                }
            }
        }
    }
}
