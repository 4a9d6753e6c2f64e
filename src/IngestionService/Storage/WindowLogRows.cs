using System.Data.Common;
using IngestionService.Ingest;

namespace IngestionService.Storage;

/// <summary>
/// Reads the window log as both stores select it, one row per window item, newest window first: seq,
/// started_at, finished_at, state, ingestion id, priority, first_pos, ids, paused_until, marks, window_ms, batch_size. A row with a new
/// window number starts a window, the others add to the one before. Each store reads its own ids and times.
/// </summary>
internal static class WindowLogRows
{
    public static async Task<IReadOnlyList<WindowRecord>> ReadAsync(DbDataReader reader, Func<DbDataReader, int, Guid> readId, Func<DbDataReader, int, DateTimeOffset> readTime, CancellationToken cancellationToken)
    {
        var windows = new List<WindowRecord>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var seq = reader.GetInt64(0);
            if (windows.Count == 0 || windows[^1].Seq != seq)
            {
                windows.Add(new WindowRecord(
                    seq,
                    readTime(reader, 1),
                    reader.IsDBNull(2) ? null : readTime(reader, 2),
                    (WindowState)reader.GetInt16(3),
                    new List<WindowRecordItem>(),
                    reader.IsDBNull(8) ? null : readTime(reader, 8),
                    reader.IsDBNull(11) ? null : new Scheduling.RateLimit(reader.GetInt32(11), TimeSpan.FromMilliseconds(reader.GetInt32(10)))));
            }

            var marks = reader.IsDBNull(9) ? null : Array.ConvertAll(reader.GetFieldValue<byte[]>(9), mark => (CallMark)mark);
            ((List<WindowRecordItem>)windows[^1].Items).Add(
                new WindowRecordItem(readId(reader, 4), (Priority)reader.GetInt16(5), reader.GetInt32(6), IdBlob.Unpack(reader.GetFieldValue<byte[]>(7)), marks));
        }

        return windows;
    }
}
