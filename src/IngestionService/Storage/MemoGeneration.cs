using System.Collections.Concurrent;
using IngestionService.Ingest;

namespace IngestionService.Storage;

/// <summary>
/// Status reads kept in memory since one commit, for the stores' memos of what they read
/// (<see cref="Sqlite.SnapshotMemo"/>, <see cref="Postgres.PostgresStatusMemo"/>): a store closes the
/// generation when a commit could change what it holds and starts a new one, so an answer is served only
/// within the generation it was read in. Bounded by entry count and by the bytes the entries keep alive.
/// </summary>
internal sealed class MemoGeneration<T>(int maxEntries, long maxBytes)
{
    private readonly ConcurrentDictionary<Guid, T> _entries = new();
    private long _bytes;
    private int _count; // kept apart: ConcurrentDictionary.Count takes every lock
    private volatile bool _closed;

    public int Count => Volatile.Read(ref _count);

    /// <summary>False once closed: a commit changed, or may have changed, what it holds.</summary>
    public bool IsOpen => !_closed;

    public bool TryGet(Guid id, out T value)
    {
        value = default!;
        return !_closed && _entries.TryGetValue(id, out value!);
    }

    /// <summary>Serves nothing more and keeps nothing more.</summary>
    public void Close() => _closed = true;

    /// <summary>
    /// Keeps an answer unless the generation is closed or full (a full one fills again in the next
    /// generation); says whether it did. With <paramref name="same"/>, an answer for an id already kept
    /// that differs from the kept one closes the generation instead: one of the two is older than a commit.
    /// </summary>
    public bool Add(Guid id, T value, long bytes, Func<T, T, bool>? same = null)
    {
        if (_closed)
        {
            return false;
        }

        // Reserved before adding, so readers racing each other cannot take it past its bounds.
        if (Interlocked.Increment(ref _count) > maxEntries | Interlocked.Add(ref _bytes, bytes) > maxBytes || !_entries.TryAdd(id, value))
        {
            Interlocked.Decrement(ref _count);
            Interlocked.Add(ref _bytes, -bytes);
            if (same is not null && _entries.TryGetValue(id, out var kept) && !same(kept, value))
            {
                Close();
            }

            return false;
        }

        return true;
    }
}

internal static class MemoGeneration
{
    /// <summary>Roughly what keeping a snapshot costs: the ids and the window spans dominate.</summary>
    public static long SizeOf(IngestionSnapshot snapshot) =>
        64 + (snapshot.Ids.Length * 4L) + (snapshot.Spans.Count * 56L) + ((snapshot.Requeued.Count + snapshot.Failed.Count) * 4L);
}
