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
/// estimate), so a cached answer is always exactly what rendering would give. Bounded by entry count.
/// </summary>
public sealed class StatusCache
{
    /// <summary>Smaller answers render in a few microseconds: not worth the memory.</summary>
    public const int MinimumBytes = 32 * 1024;

    private const int MaxEntries = 64;

    private readonly ConcurrentDictionary<Guid, Entry> _entries = new();

    public int Count => _entries.Count;

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
        if (_entries.Count >= MaxEntries && !_entries.ContainsKey(snapshot.Id))
        {
            // Any entry will do: the ones polled often come straight back.
            foreach (var key in _entries.Keys)
            {
                _entries.TryRemove(key, out _);
                break;
            }
        }

        _entries[snapshot.Id] = new Entry(snapshot, estimate, body);
        return body;
    }

    private sealed record Entry(IngestionSnapshot Snapshot, WaitEstimate? Estimate, byte[] Body)
    {
        /// <summary>
        /// Whether an answer for <paramref name="snapshot"/> would be this one. The ids, priority, created time
        /// and batch size of an ingestion never change; the ids ahead and the estimate show only while ids wait.
        /// </summary>
        public bool Shows(IngestionSnapshot snapshot, WaitEstimate? estimate)
        {
            var waiting = snapshot.Started < snapshot.Ids.Length;
            return Snapshot.Started == snapshot.Started
                && Snapshot.Completed == snapshot.Completed
                && Snapshot.PausedUntil == snapshot.PausedUntil
                && (!waiting || (Snapshot.IdsAhead == snapshot.IdsAhead && Estimate == estimate))
                && Snapshot.Spans.SequenceEqual(snapshot.Spans)
                && Snapshot.Requeued.SequenceEqual(snapshot.Requeued)
                && Snapshot.Failed.SequenceEqual(snapshot.Failed);
        }
    }
}
