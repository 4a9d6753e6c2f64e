using System.Data.Common;

namespace IngestionService.Storage;

/// <summary>The rate limit's changes as both stores select them, newest first: seq, changed_at, batch_size, window_ms.</summary>
internal static class LimitChangeRows
{
    public const string SelectNewest = "SELECT seq, changed_at, batch_size, window_ms FROM limit_changes ORDER BY seq DESC LIMIT @limit";

    public static async Task<IReadOnlyList<LimitChange>> ReadAsync(DbDataReader reader, Func<DbDataReader, int, DateTimeOffset> readTime, CancellationToken cancellationToken)
    {
        var changes = new List<LimitChange>();
        while (await reader.ReadAsync(cancellationToken))
        {
            changes.Add(new LimitChange(
                reader.GetInt64(0),
                readTime(reader, 1),
                reader.IsDBNull(2) ? null : new Scheduling.RateLimit(reader.GetInt32(2), TimeSpan.FromMilliseconds(reader.GetInt32(3)))));
        }

        return changes;
    }
}
