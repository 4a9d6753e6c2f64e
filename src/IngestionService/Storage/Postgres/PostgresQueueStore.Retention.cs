using IngestionService.Scheduling;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// Retention on the shared store (<see cref="Retention"/>). Each batch is one transaction that first takes
/// a transaction-level advisory lock without waiting: while one instance sweeps, the others' batches answer
/// <see cref="PurgeResult.Busy"/> and delete nothing, so two sweepers never contend for the same rows.
/// Deleted rows are reclaimed by PostgreSQL's autovacuum, which reuses their space for new rows.
/// </summary>
public sealed partial class PostgresQueueStore
{
    /// <summary>The advisory lock every instance's sweeper asks for ("ingestion-retention" as 8 bytes).</summary>
    internal const long SweeperLock = 0x696e67_5f7265746eL;

    public async Task<PurgeResult> PurgeAsync(PurgeRequest request, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var exclusive = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock($1)", connection, transaction))
        {
            exclusive.Parameters.AddWithValue(SweeperLock);
            if (!(bool)(await exclusive.ExecuteScalarAsync(cancellationToken))!)
            {
                return PurgeResult.OtherInstanceSweeping;
            }
        }

        var candidates = new List<(long Seq, int Total)>();
        await using (var select = new NpgsqlCommand($"""
            SELECT seq, total FROM ingestions WHERE finished_at < $1 ORDER BY finished_at LIMIT {Retention.RowsPerBatch}
            """, connection, transaction))
        {
            select.Parameters.AddWithValue(request.FinishedBefore);
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                candidates.Add((reader.GetInt64(0), reader.GetInt32(1)));
            }
        }

        var doomed = Retention.WithinBudget(candidates, candidate => candidate.Total).Select(candidate => candidate.Seq).ToArray();
        long results = 0;
        long[]? touched = null; // the windows this batch took items from
        if (doomed.Length > 0)
        {
            results = await ExecuteAsync(connection, transaction, "DELETE FROM results WHERE ingestion_seq = ANY($1)", doomed, cancellationToken);
            await using (var items = new NpgsqlCommand("WITH gone AS (DELETE FROM window_items WHERE ingestion_seq = ANY($1) RETURNING window_seq) SELECT coalesce(array_agg(DISTINCT window_seq), '{}') FROM gone", connection, transaction))
            {
                items.Parameters.AddWithValue(doomed);
                touched = (long[])(await items.ExecuteScalarAsync(cancellationToken))!;
            }

            await ExecuteAsync(connection, transaction, "DELETE FROM requeued WHERE ingestion_seq = ANY($1)", doomed, cancellationToken);
            await ExecuteAsync(connection, transaction, "DELETE FROM ingestions WHERE seq = ANY($1)", doomed, cancellationToken);
        }

        // Windows no kept ingestion has a part in, older than the retention, behind the newest ones (those
        // this batch took items from, or all once no ingestion is left: see Retention). A result names the
        // window of its latest call, which holds that position's window item, so a window without items has
        // no results either.
        int windows;
        await using (var deleteWindows = new NpgsqlCommand($"""
            DELETE FROM windows WHERE seq IN (
                SELECT w.seq FROM windows w
                WHERE ($2::bigint[] IS NULL OR w.seq = ANY($2))
                  AND w.seq <= (SELECT max(seq) FROM windows) - {Retention.KeptWindows} AND w.started_at < $1 AND w.state <> 0
                  AND NOT EXISTS (SELECT 1 FROM window_items wi WHERE wi.window_seq = w.seq)
                ORDER BY w.seq LIMIT {Retention.RowsPerBatch})
            """, connection, transaction))
        {
            deleteWindows.Parameters.AddWithValue(request.FinishedBefore);
            deleteWindows.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Bigint, Value = (object?)touched ?? DBNull.Value });
            windows = await deleteWindows.ExecuteNonQueryAsync(cancellationToken);
        }

        var keys = await ExecuteAsync(connection, transaction, $"""
            DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE expires_at <= $1 LIMIT {Retention.RowsPerBatch})
            """, request.Now, cancellationToken);

        // Webhook events are kept on their own clock: as long as a finished ingestion, after their delivery ended.
        int events;
        await using (var deleteEvents = new NpgsqlCommand($"""
            WITH gone AS (DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE done_at < $1 ORDER BY done_at, seq LIMIT {Retention.RowsPerBatch}) RETURNING seq),
                 attempts AS (DELETE FROM delivery_attempts WHERE outbox_seq IN (SELECT seq FROM gone))
            SELECT count(*)::integer FROM gone
            """, connection, transaction))
        {
            deleteEvents.Parameters.AddWithValue(request.FinishedBefore);
            events = (int)(await deleteEvents.ExecuteScalarAsync(cancellationToken))!;
        }

        await transaction.CommitAsync(cancellationToken);
        return PurgeResult.Of(candidates.Count, doomed.Length, results, windows, keys, events);
    }

    public async Task ProbeWriteAsync(CancellationToken cancellationToken)
    {
        // A write statement that a read-only database or a standby refuses, though it changes no row (so it
        // takes no lock a claim would wait for). A full disk shows at the next write that needs space.
        await using var command = _dataSource.CreateCommand("UPDATE limiter SET id = id WHERE false");
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.ReadOnlySqlTransaction)
        {
            // A session opened while the database was read-only (a standby, a demoted primary, or
            // default_transaction_read_only) stays read-only for life: drop the idle ones, so the next
            // probe opens a fresh session that sees the database as it is now.
            _dataSource.Clear();
            throw;
        }
    }

    private static async Task<int> ExecuteAsync<T>(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, T parameter, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        command.Parameters.AddWithValue(parameter!);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
