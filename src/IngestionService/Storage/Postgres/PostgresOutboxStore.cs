using IngestionService.Ingest;
using Npgsql;
using NpgsqlTypes;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The shared webhook outbox (events are written by the trigger of <c>Schema/010_webhooks.sql</c>). An
/// instance takes due events with <c>FOR UPDATE SKIP LOCKED</c> and leases them, so each is delivered by
/// one instance at a time; every time here is the database's.
/// </summary>
public sealed class PostgresOutboxStore(NpgsqlDataSource dataSource) : IOutboxStore
{
    /// <summary>Pending, due, and leased by no attempt in flight.</summary>
    private const string DueSql = "state = 0 AND next_attempt <= clock_timestamp() AND (lease_until IS NULL OR lease_until <= clock_timestamp())";

    public async Task<IReadOnlyList<OutboxEvent>> TakeDueAsync(int max, TimeSpan lease, CancellationToken cancellationToken)
    {
        // One statement: an UPDATE that finds nothing due writes nothing (no row, no transaction id), so an idle
        // outbox needs no read before it, unlike SQLite's, where any write takes the one writer.
        await using var command = dataSource.CreateCommand($"""
            UPDATE outbox o SET lease_until = clock_timestamp() + $2
            FROM (SELECT seq FROM outbox WHERE {DueSql} ORDER BY next_attempt, seq LIMIT $1 FOR UPDATE SKIP LOCKED) due
            WHERE o.seq = due.seq
            RETURNING o.seq, o.ingestion_id, o.callback_url, o.status_url, o.priority, o.created_at, o.finished_at, o.total, o.completed, o.failed, o.cancelled, o.attempts,
                      clock_timestamp() - o.finished_at, o.trace_parent
            """);
        command.Parameters.AddWithValue(max);
        command.Parameters.AddWithValue(lease);
        var taken = new List<OutboxEvent>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            taken.Add(new OutboxEvent(reader.GetInt64(0), reader.GetGuid(1), new Uri(reader.GetString(2)), reader.GetString(3), (Priority)reader.GetInt16(4),
                reader.GetFieldValue<DateTimeOffset>(5), reader.GetFieldValue<DateTimeOffset>(6), reader.GetInt32(7), reader.GetInt32(8), reader.GetInt32(9),
                reader.GetInt32(10), reader.GetInt32(11), reader.GetTimeSpan(12), reader.IsDBNull(13) ? null : reader.GetString(13)));
        }

        taken.Sort((a, b) => a.Seq.CompareTo(b.Seq));
        return taken;
    }

    public async Task RecordAttemptAsync(OutboxEvent outboxEvent, DeliveryAttempt attempt, DeliveryNext outcome, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(outboxEvent);
        ArgumentNullException.ThrowIfNull(attempt);
        // Fenced by the attempt count, as on SQLite: a late record of an attempt made again meanwhile stores nothing.
        await using var command = dataSource.CreateCommand("""
            WITH fenced AS (
                UPDATE outbox SET attempts = $2, state = $3, lease_until = NULL,
                    next_attempt = CASE WHEN $3 = 0 THEN clock_timestamp() + $4 ELSE next_attempt END,
                    done_at = CASE WHEN $3 = 0 THEN NULL ELSE clock_timestamp() END
                WHERE seq = $1 AND attempts = $2 - 1
                RETURNING seq)
            INSERT INTO delivery_attempts (outbox_seq, attempt, at, duration_ms, http_status, error)
            SELECT seq, $2, $5, $6, $7, $8 FROM fenced
            """);
        command.Parameters.AddWithValue(outboxEvent.Seq);
        command.Parameters.AddWithValue(outboxEvent.Attempts + 1);
        command.Parameters.AddWithValue((short)outcome.State);
        command.Parameters.AddWithValue(outcome.RetryIn);
        command.Parameters.AddWithValue(attempt.At.ToUniversalTime());
        command.Parameters.AddWithValue((int)attempt.Duration.TotalMilliseconds);
        command.Parameters.Add(new NpgsqlParameter<int?> { NpgsqlDbType = NpgsqlDbType.Integer, TypedValue = attempt.HttpStatus });
        command.Parameters.Add(new NpgsqlParameter<string?> { NpgsqlDbType = NpgsqlDbType.Text, TypedValue = attempt.Error });
        await command.ExecuteNonQueryAsync(cancellationToken); // one statement: one implicit transaction
    }

    public async Task<TimeSpan?> NextDueInAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT min(greatest(next_attempt, coalesce(lease_until, next_attempt))) - clock_timestamp() FROM outbox WHERE state = 0");
        return await command.ExecuteScalarAsync(cancellationToken) is TimeSpan wait ? (wait > TimeSpan.Zero ? wait : TimeSpan.Zero) : null;
    }

    public async Task<IngestionDeliveries?> ReadDeliveriesAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT 0, NULL::bigint, NULL::smallint, NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::integer, NULL::integer, NULL::integer, NULL::timestamptz, NULL::integer, NULL::integer, callback_url
            FROM ingestions WHERE id = $1
            UNION ALL
            SELECT 1, o.seq, o.state, o.finished_at, o.next_attempt, o.done_at, o.completed, o.cancelled, a.attempt, a.at, a.duration_ms, a.http_status, a.error
            FROM outbox o LEFT JOIN delivery_attempts a ON a.outbox_seq = o.seq
            WHERE o.ingestion_id = $1
            ORDER BY 1, 2, 9
            """);
        command.Parameters.AddWithValue(ingestionId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await OutboxRows.ReadDeliveriesAsync(ingestionId, reader, (row, ordinal) => row.GetFieldValue<DateTimeOffset>(ordinal), cancellationToken);
    }
}
