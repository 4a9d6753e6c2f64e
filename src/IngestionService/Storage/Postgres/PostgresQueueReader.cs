using System.Globalization;
using IngestionService.Ingest;
using IngestionService.Scheduling;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>The shared store's read side: every answer read from the database, which every instance writes.</summary>
public sealed class PostgresQueueReader(NpgsqlDataSource dataSource) : IQueueReader
{
    public async Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);

        // Repeatable read: the counters, the spans and the requeued positions come from one snapshot.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        long seq;
        Priority priority;
        DateTimeOffset createdAt;
        int batchSize, started, completed, failedCount;
        int[] ids;
        DateTimeOffset? pausedUntil;
        bool queuePaused, waiting;
        DateTimeOffset? notAfter;
        Cancellation? cancel;
        await using (var command = new NpgsqlCommand("""
            SELECT seq, priority, created_at, batch_size, coalesce(cancelled_from, started), completed, ids, failed, l.paused_until, l.queue_paused_at IS NOT NULL,
                   started < total, not_after, cancelled_from, cancelled_at, cancel_reason
            FROM ingestions i CROSS JOIN limiter l WHERE i.id = $1 AND l.id = 1
            """, connection, transaction))
        {
            command.Parameters.AddWithValue(ingestionId);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }

            seq = reader.GetInt64(0);
            priority = (Priority)reader.GetInt16(1);
            createdAt = reader.GetFieldValue<DateTimeOffset>(2);
            batchSize = reader.GetInt32(3);
            started = reader.GetInt32(4);
            completed = reader.GetInt32(5);
            ids = IdBlob.Unpack(reader.GetFieldValue<byte[]>(6));
            failedCount = reader.GetInt32(7);
            pausedUntil = reader.IsDBNull(8) ? null : reader.GetFieldValue<DateTimeOffset>(8);
            queuePaused = reader.GetBoolean(9);
            waiting = reader.GetBoolean(10);
            notAfter = reader.IsDBNull(11) ? null : reader.GetFieldValue<DateTimeOffset>(11);
            cancel = reader.IsDBNull(12) ? null : new Cancellation(reader.GetInt32(12), reader.GetFieldValue<DateTimeOffset>(13), (CancelReason)reader.GetInt16(14));
        }

        var spans = new List<WindowSpan>();
        var requeued = new List<int>();
        if (started > 0)
        {
            await using (var command = new NpgsqlCommand("""
                SELECT wi.first_pos, wi.count, w.started_at, w.finished_at, w.state
                FROM window_items wi JOIN windows w ON w.seq = wi.window_seq
                WHERE wi.ingestion_seq = $1
                ORDER BY wi.first_pos, w.seq
                """, connection, transaction))
            {
                command.Parameters.AddWithValue(seq);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    spans.Add(new WindowSpan(
                        reader.GetInt32(0),
                        reader.GetInt32(1),
                        reader.GetFieldValue<DateTimeOffset>(2),
                        reader.IsDBNull(3) ? null : reader.GetFieldValue<DateTimeOffset>(3),
                        (WindowState)reader.GetInt16(4)));
                }
            }

            requeued = await PositionsAsync(connection, transaction, "SELECT position FROM requeued WHERE ingestion_seq = $1 ORDER BY position", seq, cancellationToken);
        }

        long idsAhead = 0;
        if (waiting)
        {
            await using var command = new NpgsqlCommand("""
                SELECT (SELECT coalesce(sum(p.total - p.started), 0) FROM ingestions p
                        WHERE p.started < p.total AND (p.priority, p.created_at, p.seq) < (i.priority, i.created_at, i.seq)),
                       (SELECT count(*) FROM requeued q JOIN ingestions r ON r.seq = q.ingestion_seq
                        WHERE (r.priority, r.created_at, r.seq) <= (i.priority, i.created_at, i.seq))
                FROM ingestions i WHERE i.seq = $1
                """, connection, transaction);
            command.Parameters.AddWithValue(seq);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            idsAhead = QueuePosition.IdsAhead(Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), reader.GetInt64(1));
        }

        var failed = failedCount > 0
            ? await PositionsAsync(connection, transaction, "SELECT position FROM results WHERE ingestion_seq = $1 AND state = 2 ORDER BY position", seq, cancellationToken)
            : null;

        await transaction.CommitAsync(cancellationToken);
        return new IngestionSnapshot(ingestionId, priority, createdAt, batchSize, ids, started, completed, spans, requeued, idsAhead, failed, pausedUntil, queuePaused, cancel, notAfter);
    }

    private static async Task<List<int>> PositionsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, long seq, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        command.Parameters.AddWithValue(seq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var positions = new List<int>();
        while (await reader.ReadAsync(cancellationToken))
        {
            positions.Add(reader.GetInt32(0));
        }

        return positions;
    }

    public async Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT priority, sum(total - started)::bigint FROM ingestions WHERE started < total GROUP BY priority
            UNION ALL
            SELECT i.priority, count(*) FROM requeued q JOIN ingestions i ON i.seq = q.ingestion_seq GROUP BY i.priority
            """);
        var waiting = new long[3];
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            waiting[reader.GetInt16(0)] += reader.GetInt64(1);
        }

        return new QueueDepth(waiting[(int)Priority.High], waiting[(int)Priority.Medium], waiting[(int)Priority.Low]);
    }

    public async Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT paused_until FROM limiter WHERE id = 1");
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime until ? new DateTimeOffset(until, TimeSpan.Zero) : null;
    }

    public async Task<QueuePause?> GetQueuePauseAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT queue_paused_at, queue_pause_reason FROM limiter WHERE id = 1 AND queue_paused_at IS NOT NULL");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new QueuePause(reader.GetFieldValue<DateTimeOffset>(0), reader.IsDBNull(1) ? null : reader.GetString(1))
            : null;
    }

    public async Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);

        // The row at position -1 says the ingestion exists, so an unknown id and a page past the end differ.
        await using var command = dataSource.CreateCommand("""
            WITH i AS (SELECT seq FROM ingestions WHERE id = $1)
            (SELECT -1, NULL::integer, NULL::smallint, NULL::integer, NULL::text, NULL::boolean, NULL::integer, NULL::text, NULL::timestamptz, NULL::timestamptz FROM i)
            UNION ALL
            (SELECT r.position, r.id, r.state, r.http_status, r.body, r.truncated, r.attempts, r.error, r.fetched_at, r.next_attempt_at
             FROM i JOIN results r ON r.ingestion_seq = i.seq
             WHERE r.position > $2
             ORDER BY r.position
             LIMIT $3)
            """);
        command.Parameters.AddWithValue(ingestionId);
        command.Parameters.AddWithValue(afterPosition);
        command.Parameters.AddWithValue(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await IdResultRows.ReadAsync(reader, Time, cancellationToken);
    }

    public async Task<long> GetStoreBytesAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT pg_database_size(current_database())");
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task ProbeAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT 1");
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = dataSource.CreateCommand("""
            SELECT w.seq, w.started_at, w.finished_at, w.state, i.id, coalesce(wi.priority, i.priority), wi.first_pos, wi.ids, w.paused_until, wi.marks, w.window_ms, w.batch_size
            FROM (SELECT * FROM windows ORDER BY seq DESC LIMIT $1) w
            JOIN window_items wi ON wi.window_seq = w.seq
            JOIN ingestions i ON i.seq = wi.ingestion_seq
            ORDER BY w.seq DESC, coalesce(wi.priority, i.priority), i.created_at, wi.ingestion_seq, wi.first_pos
            """);
        command.Parameters.AddWithValue(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await WindowLogRows.ReadAsync(reader, Guid, Time, cancellationToken);
    }

    public async Task<IReadOnlyList<LimitChange>> GetLimitChangesAsync(int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(LimitChangeRows.SelectNewest);
        command.Parameters.Add(new NpgsqlParameter("limit", NpgsqlTypes.NpgsqlDbType.Integer) { Value = limit });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await LimitChangeRows.ReadAsync(reader, Time, cancellationToken);
    }

    public async Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, IngestionFilter filter, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = dataSource.CreateCommand(IngestionSummaryRows.SelectRecent);
        command.Parameters.Add(new NpgsqlParameter("priority", NpgsqlTypes.NpgsqlDbType.Smallint));
        command.Parameters.Add(new NpgsqlParameter("status", NpgsqlTypes.NpgsqlDbType.Smallint));
        command.Parameters.Add(new NpgsqlParameter("failed_only", NpgsqlTypes.NpgsqlDbType.Smallint));
        command.Parameters.Add(new NpgsqlParameter("limit", NpgsqlTypes.NpgsqlDbType.Integer));
        IngestionSummaryRows.Bind(command, limit, filter);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await IngestionSummaryRows.ReadAsync(reader, limit, Guid, Time, cancellationToken);
    }

    private static Guid Guid(System.Data.Common.DbDataReader reader, int ordinal) => reader.GetGuid(ordinal);

    private static DateTimeOffset Time(System.Data.Common.DbDataReader reader, int ordinal) => reader.GetFieldValue<DateTimeOffset>(ordinal);
}
