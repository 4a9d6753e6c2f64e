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

    private MemoGeneration<Read> _known = NewGeneration<Read>();
    private MemoGeneration<bool> _unknown = NewGeneration<bool>();

    /// <summary>Ingestions as read since the last commit that moved work along.</summary>
    public MemoGeneration<Read> Known => Volatile.Read(ref _known);

    /// <summary>Ids found unknown since the last commit that created ingestions.</summary>
    public MemoGeneration<bool> Unknown => Volatile.Read(ref _unknown);

    /// <summary>
    /// Just before a commit that moves work along: from the moment it is visible until
    /// <see cref="Progressed"/>, reads go to SQLite, so no poll sees the new state and then the old again.
    /// </summary>
    public void Progressing() => Known.Close();

    /// <summary>After a commit that changed what status reads show; before the writer answers anyone.</summary>
    public void Progressed() => Volatile.Write(ref _known, NewGeneration<Read>());

    /// <summary>Just before a commit that creates ingestions.</summary>
    public void Creating() => Unknown.Close();

    /// <summary>After a commit that created ingestions.</summary>
    public void Created() => Volatile.Write(ref _unknown, NewGeneration<bool>());

    /// <summary>
    /// What one read of an ingestion found, without what depends on the live counters: the snapshot's
    /// ids ahead are derived from <paramref name="IdsBefore"/> and <paramref name="RequeuedAhead"/> on use.
    /// </summary>
    internal sealed record Read(IngestionSnapshot Snapshot, long? IdsBefore, long RequeuedAhead)
    {
        /// <summary>Roughly what the entry keeps alive: the ids and the window spans dominate.</summary>
        public long Bytes { get; } = MemoGeneration.SizeOf(Snapshot);
    }

    private static MemoGeneration<T> NewGeneration<T>() => new(MaxEntries, MaxBytes);
}
