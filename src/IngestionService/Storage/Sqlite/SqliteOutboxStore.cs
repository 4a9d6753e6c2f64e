using System.Data.Common;
using IngestionService.Ingest;
using IngestionService.Notifications;
using IngestionService.Scheduling;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// The embedded store's webhook outbox (events are written by the trigger of <c>Schema/010_webhooks.sql</c>).
/// One process owns the file, so a lease only keeps this process from taking an event twice; the leases a
/// dead process left are ended at its successor's first look, and those events are due at once.
/// </summary>
public sealed class SqliteOutboxStore(SqliteDatabase database, TimeProvider clock) : IOutboxStore
{
    /// <summary>Pending, due, and leased by no attempt in flight, at <c>$now</c> (unix ms).</summary>
    private const string DueSql = "state = 0 AND next_attempt <= $now AND (lease_until IS NULL OR lease_until <= $now)";

    private bool _leftLeasesEnded;

    public async Task<IReadOnlyList<OutboxEvent>> TakeDueAsync(int max, TimeSpan lease, CancellationToken cancellationToken)
    {
        var now = Milliseconds.Floor(clock.GetUtcNow()).ToUnixTimeMilliseconds();
        if (_leftLeasesEnded)
        {
            // A read first, with the take's own condition, so an idle outbox costs the writer nothing.
            using var session = await database.Readers.RentAsync(cancellationToken);
            var any = session.Command($"SELECT EXISTS (SELECT 1 FROM outbox WHERE {DueSql})", "$now");
            any.Parameters["$now"].Value = now;
            if (await any.ExecuteScalarAsync(cancellationToken) is not 1L)
            {
                return [];
            }
        }

        return await database.WriteAsync(async (writer, transaction) =>
        {
            if (!_leftLeasesEnded)
            {
                await SqliteDatabase.ExecuteAsync(writer, transaction, "UPDATE outbox SET lease_until = NULL WHERE state = 0 AND lease_until IS NOT NULL", cancellationToken);
            }

            await using var take = writer.CreateCommand();
            take.Transaction = transaction;
            take.CommandText = $"""
                UPDATE outbox SET lease_until = $until
                WHERE seq IN (SELECT seq FROM outbox WHERE {DueSql} ORDER BY next_attempt, seq LIMIT $max)
                RETURNING seq, ingestion_id, callback_url, status_url, priority, created_at, finished_at, total, completed, failed, cancelled, attempts, trace_parent
                """;
            take.Parameters.AddWithValue("$until", now + (long)lease.TotalMilliseconds);
            take.Parameters.AddWithValue("$now", now);
            take.Parameters.AddWithValue("$max", max);
            var taken = new List<OutboxEvent>();
            await using (var reader = await take.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    var finished = SqliteIds.Time(reader, 6);
                    taken.Add(new OutboxEvent(reader.GetInt64(0), SqliteIds.Read(reader, 1), new Uri(reader.GetString(2)), reader.GetString(3),
                        (Priority)reader.GetInt32(4), SqliteIds.Time(reader, 5), finished, reader.GetInt32(7), reader.GetInt32(8),
                        reader.GetInt32(9), reader.GetInt32(10), reader.GetInt32(11), DateTimeOffset.FromUnixTimeMilliseconds(now) - finished,
                        reader.IsDBNull(12) ? null : reader.GetString(12)));
                }
            }

            await transaction.CommitAsync(cancellationToken);
            _leftLeasesEnded = true;
            return taken;
        }, cancellationToken);
    }

    public Task RecordAttemptAsync(OutboxEvent outboxEvent, DeliveryAttempt attempt, DeliveryNext outcome, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(outboxEvent);
        ArgumentNullException.ThrowIfNull(attempt);
        return database.WriteAsync(async (writer, transaction) =>
        {
            var now = Milliseconds.Ceiling(clock.GetUtcNow());
            await using var record = writer.CreateCommand();
            record.Transaction = transaction;
            // Fenced by the attempt count: an attempt whose lease ran out while another was made and stored
            // stores nothing (the event was attempted again meanwhile: at least once either way).
            record.CommandText = """
                UPDATE outbox SET attempts = $attempt, state = $state, lease_until = NULL,
                    next_attempt = CASE WHEN $state = 0 THEN $next ELSE next_attempt END,
                    done_at = CASE WHEN $state = 0 THEN NULL ELSE $now END
                WHERE seq = $seq AND attempts = $attempt - 1;
                INSERT INTO delivery_attempts (outbox_seq, attempt, at, duration_ms, http_status, error)
                SELECT $seq, $attempt, $at, $duration, $status, $error WHERE changes() = 1;
                """;
            record.Parameters.AddWithValue("$seq", outboxEvent.Seq);
            record.Parameters.AddWithValue("$attempt", outboxEvent.Attempts + 1);
            record.Parameters.AddWithValue("$at", Milliseconds.Floor(attempt.At).ToUnixTimeMilliseconds());
            record.Parameters.AddWithValue("$duration", (long)attempt.Duration.TotalMilliseconds);
            record.Parameters.AddWithValue("$status", (object?)attempt.HttpStatus ?? DBNull.Value);
            record.Parameters.AddWithValue("$error", (object?)attempt.Error ?? DBNull.Value);
            record.Parameters.AddWithValue("$state", (int)outcome.State);
            record.Parameters.AddWithValue("$next", Milliseconds.Ceiling(now + outcome.RetryIn).ToUnixTimeMilliseconds());
            record.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
            await record.ExecuteNonQueryAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }, cancellationToken);
    }

    public async Task<TimeSpan?> NextDueInAsync(CancellationToken cancellationToken)
    {
        using var session = await database.Readers.RentAsync(cancellationToken);
        var command = session.Command("SELECT min(max(next_attempt, coalesce(lease_until, 0))) FROM outbox WHERE state = 0");
        var due = await command.ExecuteScalarAsync(cancellationToken);
        if (due is not long at)
        {
            return null;
        }

        var wait = DateTimeOffset.FromUnixTimeMilliseconds(at) - clock.GetUtcNow();
        return wait > TimeSpan.Zero ? wait : TimeSpan.Zero;
    }

    public async Task<IngestionDeliveries?> ReadDeliveriesAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        using var session = await database.Readers.RentAsync(cancellationToken);
        var command = session.Command("""
            SELECT 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, callback_url FROM ingestions WHERE id = $id
            UNION ALL
            SELECT 1, o.seq, o.state, o.finished_at, o.next_attempt, o.done_at, o.completed, o.cancelled, a.attempt, a.at, a.duration_ms, a.http_status, a.error
            FROM outbox o LEFT JOIN delivery_attempts a ON a.outbox_seq = o.seq
            WHERE o.ingestion_id = $id
            ORDER BY 1, 2, 9
            """, "$id");
        command.Parameters["$id"].Value = SqliteIds.Bytes(ingestionId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await OutboxRows.ReadDeliveriesAsync(ingestionId, reader, SqliteIds.Time, cancellationToken);
    }
}
