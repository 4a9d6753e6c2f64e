using System.Data.Common;
using IngestionService.Ingest;

namespace IngestionService.Storage;

/// <summary>
/// Reads recent ingestions as both stores select them: id, priority, created_at, batch_size, total,
/// started, completed, failed, cancelled. Each store reads its own ids and times.
/// </summary>
internal static class IngestionSummaryRows
{
    /// <summary>
    /// The one query of recent ingestions, in SQL both engines take (named parameters, plain comparisons).
    /// Its status is <see cref="StatusReport.Overall(IngestionSummary)"/> on the counters: once every position handed out is
    /// final, completed (cancelled when a tail was cancelled); triggered once one has started; yet to start
    /// before. The numbers are <see cref="ProgressStatus"/>'s; `started` is what was really handed out.
    /// </summary>
    public const string SelectRecent = """
        SELECT id, priority, created_at, batch_size, total, coalesce(cancelled_from, started), completed, failed, total - coalesce(cancelled_from, total)
        FROM ingestions
        WHERE (@priority IS NULL OR priority = @priority)
          AND (@status IS NULL OR CASE WHEN completed >= coalesce(cancelled_from, total) THEN (CASE WHEN cancelled_from IS NULL THEN 2 ELSE 3 END)
                                       WHEN coalesce(cancelled_from, started) > 0 THEN 1 ELSE 0 END = @status)
          AND (@failed_only = 0 OR failed > 0)
        ORDER BY seq DESC
        LIMIT @limit
        """;

    public static readonly string[] Parameters = ["@priority", "@status", "@failed_only", "@limit"];

    /// <summary>Sets the four <see cref="Parameters"/> of <see cref="SelectRecent"/>, which the command already has in that order.</summary>
    public static void Bind(DbCommand command, int limit, IngestionFilter filter)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(filter);
        command.Parameters[0].Value = filter.Priority is { } priority ? (short)priority : DBNull.Value;
        command.Parameters[1].Value = filter.Status is { } status ? (short)status : DBNull.Value;
        command.Parameters[2].Value = filter.FailedOnly ? (short)1 : (short)0;
        command.Parameters[3].Value = limit;
    }

    public static async Task<IReadOnlyList<IngestionSummary>> ReadAsync(DbDataReader reader, int capacity, Func<DbDataReader, int, Guid> readId, Func<DbDataReader, int, DateTimeOffset> readTime, CancellationToken cancellationToken)
    {
        var ingestions = new List<IngestionSummary>(capacity);
        while (await reader.ReadAsync(cancellationToken))
        {
            ingestions.Add(new IngestionSummary(
                readId(reader, 0),
                (Priority)reader.GetInt16(1),
                readTime(reader, 2),
                reader.GetInt32(3),
                reader.GetInt32(4),
                reader.GetInt32(5),
                reader.GetInt32(6),
                reader.GetInt32(7),
                reader.GetInt32(8)));
        }

        return ingestions;
    }
}
