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

    /// <summary>Per generation: answers of each priority and unknown ids alike.</summary>
    internal const int MaxEntries = 4096;

    internal const long MaxBytes = 16L * 1024 * 1024;

    private readonly MemoGeneration<IngestionSnapshot>[] _known = [New<IngestionSnapshot>(), New<IngestionSnapshot>(), New<IngestionSnapshot>()];
    private MemoGeneration<bool> _unknown = New<bool>();

    /// <summary>The generations in force now; a read takes them before it asks the database anything.</summary>
    public Generations Current => new(Volatile.Read(ref _known[0]), Volatile.Read(ref _known[1]), Volatile.Read(ref _known[2]), Volatile.Read(ref _unknown));

    /// <summary>
    /// A commit told its listeners. New ingestions change what an unknown id finds and the ids ahead of
    /// the waiting ingestions of every priority below theirs (never of the highest), nothing else.
    /// </summary>
    public void Heard(string payload)
    {
        var created = payload == Created;
        for (var priority = created ? Priority.Medium : Priority.High; priority <= Priority.Low; priority++)
        {
            Interlocked.Exchange(ref _known[(int)priority], New<IngestionSnapshot>()).Close();
        }

        if (created)
        {
            Interlocked.Exchange(ref _unknown, New<bool>()).Close();
        }
    }

    /// <summary>A session starts listening: what was committed before it did was never heard, so nothing read before is served.</summary>
    public void Forget()
    {
        Heard(Changed);
        Heard(Created);
    }

    private static MemoGeneration<T> New<T>() => new(MaxEntries, MaxBytes);

    /// <summary>The generations one group of reads took; <c>which</c> names one (0–2 a priority's answers, 3 the unknown ids).</summary>
    internal readonly record struct Generations(
        MemoGeneration<IngestionSnapshot> High, MemoGeneration<IngestionSnapshot> Medium, MemoGeneration<IngestionSnapshot> Low, MemoGeneration<bool> Unknown)
    {
        public bool TryGet(Guid id, out IngestionSnapshot? snapshot, out int which)
        {
            (snapshot, which) = (null, -1);
            if (High.TryGet(id, out var high))
            {
                (snapshot, which) = (high, 0);
            }
            else if (Medium.TryGet(id, out var medium))
            {
                (snapshot, which) = (medium, 1);
            }
            else if (Low.TryGet(id, out var low))
            {
                (snapshot, which) = (low, 2);
            }
            else if (Unknown.TryGet(id, out _))
            {
                which = 3;
            }

            return which >= 0;
        }

        /// <summary>Whether nothing heard since these were taken touched generation <paramref name="which"/>.</summary>
        public bool IsOpen(int which) => which switch
        {
            0 => High.IsOpen,
            1 => Medium.IsOpen,
            2 => Low.IsOpen,
            _ => Unknown.IsOpen,
        };

        /// <summary>Keeps what a statement sent after these were taken read: an ingestion, or null for an unknown id.</summary>
        public void Keep(Guid id, IngestionSnapshot? snapshot)
        {
            if (snapshot is null)
            {
                Unknown.Add(id, true, 64);
                return;
            }

            var known = snapshot.Priority switch
            {
                Priority.High => High,
                Priority.Medium => Medium,
                _ => Low,
            };
            known.Add(id, snapshot, MemoGeneration.SizeOf(snapshot));
        }
    }
}
