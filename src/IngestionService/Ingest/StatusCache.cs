using System.Buffers;
using System.Collections.Concurrent;
using IngestionService.Storage;

namespace IngestionService.Ingest;

/// <summary>
/// The rendered answers of large statuses, reused while nothing they show has changed. A status changes
/// only when a window starts or finishes, or the estimate moves (once a window), while clients poll far
/// more often; rendering a thousand batches costs several times more than reading them. An entry is used
/// only when every input of the answer is equal to the one it was rendered from (the counters, the window
/// spans, the requeued and failed positions, the pause, and, while ids wait, the ids ahead and the
/// estimate), so a cached answer is always exactly what rendering would give. The answer of a completed
/// ingestion never changes again (every window that took its ids is over, nothing waits, and neither
/// the estimate nor the pause is shown), so it is served without reading the store at all, until the
/// retention may have deleted it (then the store says whether it is still there). Bounded by
/// entry count and by the bytes of the answers (and of the ids the entries keep to compare with).
/// </summary>
public sealed class StatusCache
{
    /// <summary>Smaller answers render in a few microseconds: not worth the memory.</summary>
    public const int MinimumBytes = 32 * 1024;

    private const int MaxEntries = 1024;
    private const long MaxBytes = 32L * 1024 * 1024;

    private readonly ConcurrentDictionary<Guid, Entry> _entries = new();
    private long _bytes;

    public int Count => _entries.Count;

    /// <summary>What the entries hold: their answers and the ids of their snapshots.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>Whether a snapshot's answer can never change again: every id has a final result and no window runs.</summary>
    public static bool IsFinal(IngestionSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        return snapshot.Completed == snapshot.Ids.Length - snapshot.CancelledIds
            && snapshot.Requeued.Count == 0
            && snapshot.Spans.All(span => span.State != WindowState.Running);
    }

    /// <summary>
    /// The answer of a completed ingestion, if it was rendered before and it finished at or after
    /// <paramref name="keptSince"/> (now less the retention), so no sweep can have deleted it yet.
    /// </summary>
    public byte[]? Final(Guid ingestionId, DateTimeOffset keptSince) =>
        _entries.TryGetValue(ingestionId, out var entry) && entry.IsFinal && entry.FinishedAt >= keptSince ? entry.Body : null;

    /// <summary>The answer for this snapshot and estimate, rendered now or earlier.</summary>
    public byte[] Render(IngestionSnapshot snapshot, WaitEstimate? estimate)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (_entries.TryGetValue(snapshot.Id, out var entry) && entry.Shows(snapshot, estimate))
        {
            return entry.Body;
        }

        var writer = new ArrayBufferWriter<byte>(StatusJson.EstimateSize(snapshot));
        StatusJson.Write(writer, snapshot, estimate);
        var body = writer.WrittenSpan.ToArray();
        var fresh = new Entry(snapshot, estimate, body);
        if (fresh.Bytes > MaxBytes / 4)
        {
            return body; // a giant answer would push out everything else
        }

        Remove(snapshot.Id);
        foreach (var key in _entries.Keys)
        {
            // Any entry will do: the ones polled often come straight back.
            if (_entries.Count < MaxEntries && Bytes + fresh.Bytes <= MaxBytes)
            {
                break;
            }

            Remove(key);
        }

        if (_entries.TryAdd(snapshot.Id, fresh))
        {
            Interlocked.Add(ref _bytes, fresh.Bytes);
        }

        return body;
    }

    private void Remove(Guid id)
    {
        if (_entries.TryRemove(id, out var removed))
        {
            Interlocked.Add(ref _bytes, -removed.Bytes);
        }
    }

    /// <summary>Snapshots served from the store's memory share their lists, so most checks end at the reference.</summary>
    private static bool Same<T>(IReadOnlyList<T> a, IReadOnlyList<T> b) => ReferenceEquals(a, b) || a.SequenceEqual(b);

    private sealed record Entry(IngestionSnapshot Snapshot, WaitEstimate? Estimate, byte[] Body)
    {
        public long Bytes => Body.Length + (Snapshot.Ids.Length * 4L);

        public bool IsFinal { get; } = IsFinal(Snapshot);

        /// <summary>When its last id became final, as far as the snapshot tells: its last window's finish, or its cancel.</summary>
        public DateTimeOffset FinishedAt { get; } = Snapshot.Spans
            .Select(span => span.FinishedAt ?? span.StartedAt)
            .Append(Snapshot.Cancel?.At ?? Snapshot.CreatedAt)
            .Max();

        /// <summary>
        /// Whether an answer for <paramref name="snapshot"/> would be this one. The ids, created time, batch
        /// size and not_after of an ingestion never change; the ids ahead and the estimate show only while ids wait.
        /// </summary>
        public bool Shows(IngestionSnapshot snapshot, WaitEstimate? estimate)
        {
            var waiting = snapshot.Waiting;
            return Snapshot.Started == snapshot.Started
                && Snapshot.Priority == snapshot.Priority
                && Snapshot.Cancel == snapshot.Cancel
                && Snapshot.Completed == snapshot.Completed
                && Snapshot.PausedUntil == snapshot.PausedUntil
                && Snapshot.QueuePaused == snapshot.QueuePaused
                && (!waiting || (Snapshot.IdsAhead == snapshot.IdsAhead && Estimate == estimate))
                && Same(Snapshot.Spans, snapshot.Spans)
                && Same(Snapshot.Requeued, snapshot.Requeued)
                && Same(Snapshot.Failed, snapshot.Failed);
        }
    }
}
