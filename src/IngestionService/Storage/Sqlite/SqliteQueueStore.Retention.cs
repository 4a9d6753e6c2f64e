using IngestionService.Ingest;
using IngestionService.Scheduling;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// Retention on the embedded store (<see cref="Retention"/>): each batch is one write transaction under the
/// write lock, so a submission or a window waits for one batch at most, never for a whole sweep. The freed
/// pages are given back to the file system by incremental auto-vacuum after the batch.
/// </summary>
public sealed partial class SqliteQueueStore
{
    /// <summary>Pages handed back to the file system after a batch: 4 MiB at the default page size of new files.</summary>
    private const int VacuumPagesPerBatch = 4096;

    public async Task<PurgeResult> PurgeAsync(PurgeRequest request, CancellationToken cancellationToken)
    {
        var result = await database.WriteAsync(async (writer, transaction) =>
        {
            var candidates = await CandidatesAsync(writer, transaction, request.FinishedBefore, cancellationToken);
            var doomed = Retention.WithinBudget(candidates, candidate => candidate.Total);
            long results = 0;
            string? touched = null; // the windows this batch took items from, as a JSON array
            if (doomed.Count > 0)
            {
                // One statement a table, like PostgreSQL's `= ANY($1)`: the seqs as a JSON array.
                var seqs = $"[{string.Join(',', doomed.Select(candidate => candidate.Seq))}]";
                results = await ExecuteAsync(writer, transaction, "DELETE FROM results WHERE ingestion_seq IN (SELECT value FROM json_each($p))", seqs, cancellationToken);
                touched = await ScalarAsync(writer, transaction, "SELECT json_group_array(DISTINCT window_seq) FROM window_items WHERE ingestion_seq IN (SELECT value FROM json_each($p))", seqs, cancellationToken);
                await ExecuteAsync(writer, transaction, "DELETE FROM window_items WHERE ingestion_seq IN (SELECT value FROM json_each($p))", seqs, cancellationToken);
                await ExecuteAsync(writer, transaction, "DELETE FROM ingestions WHERE seq IN (SELECT value FROM json_each($p))", seqs, cancellationToken);
            }

            foreach (var group in doomed.GroupBy(candidate => candidate.Priority))
            {
                await ExecuteAsync(writer, transaction, $"""
                    INSERT INTO purged_totals (priority, ids) VALUES ({(int)group.Key}, $p)
                    ON CONFLICT (priority) DO UPDATE SET ids = ids + excluded.ids
                    """, group.Sum(candidate => (long)candidate.Total), cancellationToken);
            }

            // Windows no kept ingestion has a part in, older than the retention, behind the newest ones
            // (see Retention: those this batch took items from, or all once no ingestion is left).
            await using var deleteWindows = writer.CreateCommand();
            deleteWindows.Transaction = transaction;
            deleteWindows.CommandText = $"""
                DELETE FROM windows WHERE seq IN (
                    SELECT w.seq FROM windows w
                    WHERE ($touched IS NULL OR w.seq IN (SELECT value FROM json_each($touched)))
                      AND w.seq <= (SELECT max(seq) FROM windows) - {Retention.KeptWindows} AND w.started_at < $before AND w.state <> 0
                      AND NOT EXISTS (SELECT 1 FROM window_items wi WHERE wi.window_seq = w.seq)
                    ORDER BY w.seq LIMIT {Retention.RowsPerBatch})
                """;
            deleteWindows.Parameters.AddWithValue("$touched", (object?)touched ?? DBNull.Value);
            deleteWindows.Parameters.AddWithValue("$before", request.FinishedBefore.ToUnixTimeMilliseconds());
            var windows = await deleteWindows.ExecuteNonQueryAsync(cancellationToken);
            var keys = await ExecuteAsync(writer, transaction, $"""
                DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE expires_at <= $p LIMIT {Retention.RowsPerBatch})
                """, request.Now.ToUnixTimeMilliseconds(), cancellationToken);

            // Webhook events are kept on their own clock: as long as a finished ingestion, after their delivery ended.
            var ended = $"SELECT seq FROM outbox WHERE done_at < $p ORDER BY done_at, seq LIMIT {Retention.RowsPerBatch}";
            var before = request.FinishedBefore.ToUnixTimeMilliseconds();
            await ExecuteAsync(writer, transaction, $"DELETE FROM delivery_attempts WHERE outbox_seq IN ({ended})", before, cancellationToken);
            var events = await ExecuteAsync(writer, transaction, $"DELETE FROM outbox WHERE seq IN ({ended})", before, cancellationToken);

            await database.CommitAsync(transaction, cancellationToken);
            return PurgeResult.Of(candidates.Count, doomed.Count, results, windows, keys, events);
        }, cancellationToken);

        if (result.Rows > 0)
        {
            await database.WriteAsync(async (writer, transaction) =>
            {
                await SqliteDatabase.ExecuteAsync(writer, transaction, $"PRAGMA incremental_vacuum({VacuumPagesPerBatch})", cancellationToken);
                await transaction.CommitAsync(cancellationToken);
            }, cancellationToken);
        }

        return result;
    }

    public Task ProbeWriteAsync(CancellationToken cancellationToken) =>
        database.WriteAsync(async (writer, transaction) =>
        {
            // A page's worth of new data, so a file that cannot grow refuses it; rolled back, it leaves nothing.
            await ExecuteAsync(writer, transaction, "INSERT INTO purged_totals (priority, ids) VALUES (-1, zeroblob($p))", 4096, cancellationToken);
        }, cancellationToken);

    /// <summary>
    /// Finished ingestions, oldest first. One that waiting work of its priority was created before is kept
    /// for now: the constant-time ids ahead (<see cref="QueueTotals.IdsAhead"/>) of that work count its
    /// cancelled tail as behind it, so it goes once that work has started.
    /// </summary>
    private static async Task<IReadOnlyList<(long Seq, Priority Priority, int Total)>> CandidatesAsync(SqliteConnection writer, SqliteTransaction transaction, DateTimeOffset finishedBefore, CancellationToken cancellationToken)
    {
        await using var select = writer.CreateCommand();
        select.Transaction = transaction;
        select.CommandText = $"""
            SELECT i.seq, i.priority, i.total FROM ingestions i
            WHERE i.finished_at IS NOT NULL AND i.finished_at < $before
              AND NOT EXISTS (SELECT 1 FROM ingestions w WHERE w.priority = i.priority AND w.started < w.total AND (w.created_at, w.seq) < (i.created_at, i.seq))
            ORDER BY i.finished_at LIMIT {Retention.RowsPerBatch}
            """;
        select.Parameters.AddWithValue("$before", finishedBefore.ToUnixTimeMilliseconds());
        var candidates = new List<(long, Priority, int)>();
        await using var reader = await select.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            candidates.Add((reader.GetInt64(0), (Priority)reader.GetInt32(1), reader.GetInt32(2)));
        }

        return candidates;
    }

    private static async Task<string?> ScalarAsync(SqliteConnection writer, SqliteTransaction transaction, string sql, object parameter, CancellationToken cancellationToken)
    {
        await using var command = Command(writer, transaction, sql, parameter);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }

    private static async Task<int> ExecuteAsync(SqliteConnection writer, SqliteTransaction transaction, string sql, object parameter, CancellationToken cancellationToken)
    {
        await using var command = Command(writer, transaction, sql, parameter);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static SqliteCommand Command(SqliteConnection writer, SqliteTransaction transaction, string sql, object parameter)
    {
        var command = writer.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.Parameters.AddWithValue("$p", parameter);
        return command;
    }
}
