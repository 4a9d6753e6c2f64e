using System.Data.Common;

namespace IngestionService.Storage;

/// <summary>
/// Reads a page of results as both stores select it: position, id, state, http_status, body, truncated,
/// attempts, error, fetched_at, next_attempt_at, plus one row at position -1 when the ingestion exists,
/// so an unknown ingestion (null) and a page past the end (empty) differ. Each store reads its own times.
/// </summary>
internal static class IdResultRows
{
    public static async Task<IReadOnlyList<IdResult>?> ReadAsync(DbDataReader reader, Func<DbDataReader, int, DateTimeOffset> readTime, CancellationToken cancellationToken)
    {
        var known = false;
        var results = new List<IdResult>();
        while (await reader.ReadAsync(cancellationToken))
        {
            if (reader.GetInt32(0) < 0)
            {
                known = true;
                continue;
            }

            results.Add(new IdResult(
                reader.GetInt32(0),
                reader.GetInt32(1),
                (FetchState)reader.GetInt32(2),
                reader.IsDBNull(3) ? null : reader.GetInt32(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.GetBoolean(5),
                reader.GetInt32(6),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                readTime(reader, 8),
                reader.IsDBNull(9) ? null : readTime(reader, 9)));
        }

        return known ? results : null;
    }
}
