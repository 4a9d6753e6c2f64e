using System.Collections.Concurrent;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// Status reads served from memory between the writes that could change them. This store is the only
/// writer of its file, so it knows every commit: what a read found stays true until the next commit
/// that moves work along (a window claimed, finished or abandoned), and an id found unknown stays
/// unknown until the next commit that creates ingestions. Each such commit starts a new generation,
/// and a read keeps its answer in the generation it started in, so an answer read across a commit lands
/// in a generation that is already gone and is never served. Clients poll far more often than windows
/// start (one every <c>Ingestion:Window</c>), so nearly every poll skips SQLite entirely.
/// What is computed from live counters (the ids ahead, the pause) is not kept: the store adds it per read.
/// </summary>
internal sealed class SnapshotMemo
{
    /// <summary>Per generation: a few thousand ingestions, or 32 MB of what they hold, whichever comes first.</summary>
    internal const int MaxEntries = 4096;

    internal const long MaxBytes = 32L * 1024 * 1024;

    private Generation<Read> _known = new();
    private Generation<bool> _unknown = new();

    /// <summary>Ingestions as read since the last commit that moved work along.</summary>
    public Generation<Read> Known => Volatile.Read(ref _known);

    /// <summary>Ids found unknown since the last commit that created ingestions.</summary>
    public Generation<bool> Unknown => Volatile.Read(ref _unknown);

    /// <summary>
    /// Just before a commit that moves work along: from the moment it is visible until
    /// <see cref="Progressed"/>, reads go to SQLite, so no poll sees the new state and then the old again.
    /// </summary>
    public void Progressing() => Known.Close();

    /// <summary>After a commit that changed what status reads show; before the writer answers anyone.</summary>
    public void Progressed() => Volatile.Write(ref _known, new Generation<Read>());

    /// <summary>Just before a commit that creates ingestions.</summary>
    public void Creating() => Unknown.Close();

    /// <summary>After a commit that created ingestions.</summary>
    public void Created() => Volatile.Write(ref _unknown, new Generation<bool>());

    /// <summary>
    /// What one read of an ingestion found, without what depends on the live counters: the snapshot's
    /// ids ahead are derived from <paramref name="IdsBefore"/> and <paramref name="RequeuedAhead"/> on use.
    /// </summary>
    internal sealed record Read(IngestionSnapshot Snapshot, long? IdsBefore, long RequeuedAhead)
    {
        /// <summary>Roughly what the entry keeps alive: the ids and the window spans dominate.</summary>
        public long Bytes { get; } = 64 + (Snapshot.Ids.Length * 4L) + (Snapshot.Spans.Count * 56L) + ((Snapshot.Requeued.Count + Snapshot.Failed.Count) * 4L);
    }

    internal sealed class Generation<T>
    {
        private readonly ConcurrentDictionary<Guid, T> _entries = new();
        private long _bytes;
        private int _count; // kept apart: ConcurrentDictionary.Count takes every lock

        public int Count => Volatile.Read(ref _count);

        private volatile bool _closed;

        public bool TryGet(Guid id, out T value)
        {
            value = default!;
            return !_closed && _entries.TryGetValue(id, out value!);
        }

        /// <summary>Serves nothing more and keeps nothing more: a commit is about to change what it holds.</summary>
        public void Close() => _closed = true;

        /// <summary>Keeps an answer unless the generation is closed or full; a full one fills again at the next commit.</summary>
        public void Add(Guid id, T value, long bytes)
        {
            if (_closed)
            {
                return;
            }

            // Reserved before adding, so readers racing each other cannot take it past its bounds.
            if (Interlocked.Increment(ref _count) > MaxEntries | Interlocked.Add(ref _bytes, bytes) > MaxBytes || !_entries.TryAdd(id, value))
            {
                Interlocked.Decrement(ref _count);
                Interlocked.Add(ref _bytes, -bytes);
            }
        }
    }
}
