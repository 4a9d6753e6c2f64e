using IngestionService.Scheduling;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// An operator's actions on the shared queue, each one transaction that every instance honours from its
/// next claim: the pause is on the <c>limiter</c> row every claim locks and reads; a cancel and a move take
/// that row's lock as claims do, so no claim hands out positions they have taken or moved; a limit change
/// is a new row of <c>limit_changes</c>, which every claim reads under the lock.
/// </summary>
public sealed partial class PostgresQueueStore
{
    public async Task<QueuePause> PauseQueueAsync(string? reason, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""
            UPDATE limiter SET queue_paused_at = coalesce(queue_paused_at, {NowCeilingMs}), queue_pause_reason = coalesce($1, queue_pause_reason)
            WHERE id = 1
            RETURNING queue_paused_at, queue_pause_reason
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)reason ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new QueuePause(reader.GetFieldValue<DateTimeOffset>(0), reader.IsDBNull(1) ? null : reader.GetString(1));
    }

    public async Task<bool> ResumeQueueAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""
            WITH resumed AS (UPDATE limiter SET queue_paused_at = NULL, queue_pause_reason = NULL WHERE id = 1 AND queue_paused_at IS NOT NULL RETURNING 1)
            SELECT {PostgresWakeUps.Notify} FROM resumed
            """);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken);
    }

    public async Task<CancelOutcome> CancelAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // Under the limiter's lock, as claims are: a claim that read the ingestion's counter cannot then
        // hand out positions this cancel has taken.
        await LockLimiterAsync(connection, transaction, cancellationToken);

        CancelOutcome outcome;
        await using (var cancel = new NpgsqlCommand($"""
            WITH cancelled AS ({CancelSql(NowCeilingMs, CancelReason.Requested)} WHERE id = $1 AND started < total AND cancelled_from IS NULL RETURNING priority, total - cancelled_from AS ids),
            counted AS ({PostgresTotals.StartCancelled("cancelled")})
            SELECT EXISTS (SELECT 1 FROM cancelled), cancelled_from IS NOT NULL FROM ingestions WHERE id = $1
            """, connection, transaction))
        {
            cancel.Parameters.AddWithValue(ingestionId);
            await using var reader = await cancel.ExecuteReaderAsync(cancellationToken);
            outcome = !await reader.ReadAsync(cancellationToken) ? CancelOutcome.Unknown
                : reader.GetBoolean(0) ? CancelOutcome.Cancelled
                : reader.GetBoolean(1) ? CancelOutcome.AlreadyCancelled
                : CancelOutcome.NothingToCancel;
        }

        await transaction.CommitAsync(cancellationToken);
        return outcome;
    }

    public async Task<ReprioritiseOutcome> ReprioritiseAsync(Guid ingestionId, Ingest.Priority priority, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await LockLimiterAsync(connection, transaction, cancellationToken);
        short from;

        // The move, with its ids moved from one priority's totals to the other's.
        ReprioritiseOutcome outcome;
        await using (var move = new NpgsqlCommand($"""
            WITH target AS (
                SELECT seq, priority, started < total OR EXISTS (SELECT 1 FROM requeued q WHERE q.ingestion_seq = i.seq) AS waits
                FROM ingestions i WHERE id = $1),
            moved AS (
                UPDATE ingestions i SET priority = $2 FROM target t
                WHERE i.seq = t.seq AND t.waits AND t.priority <> $2 RETURNING t.priority AS from_priority, i.total::bigint, i.started::bigint),
            shifted AS (
                UPDATE queue_totals q SET {PostgresTotals.Move("enqueued", "m.total", "m.from_priority", "$2", "q")}, {PostgresTotals.Move("started", "m.started", "m.from_priority", "$2", "q")}
                FROM moved m WHERE q.id = 1)
            SELECT waits, priority = $2, EXISTS (SELECT 1 FROM moved), priority FROM target
            """, connection, transaction))
        {
            move.Parameters.AddWithValue(ingestionId);
            move.Parameters.AddWithValue((short)priority);
            await using var reader = await move.ExecuteReaderAsync(cancellationToken);
            outcome = !await reader.ReadAsync(cancellationToken) ? ReprioritiseOutcome.Unknown
                : !reader.GetBoolean(0) ? ReprioritiseOutcome.NothingWaits
                : reader.GetBoolean(1) ? ReprioritiseOutcome.Unchanged
                : ReprioritiseOutcome.Moved;
            from = outcome == ReprioritiseOutcome.Moved ? reader.GetInt16(3) : (short)0;
        }

        if (outcome == ReprioritiseOutcome.Moved)
        {
            // Moved in, it may land ahead of ids already started: the ids before of both priorities are counted afresh.
            await using var recount = new NpgsqlCommand("SELECT recount_ids_before(ARRAY[$1, $2]::smallint[])", connection, transaction);
            recount.Parameters.AddWithValue(from);
            recount.Parameters.AddWithValue((short)priority);
            await recount.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return outcome;
    }

    public async Task<LimitChange> SetLimitAsync(RateLimit? limit, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""
            WITH changed AS (INSERT INTO limit_changes (changed_at, batch_size, window_ms) VALUES ({NowCeilingMs}, $1, $2) RETURNING seq, changed_at)
            SELECT seq, changed_at, {PostgresWakeUps.Notify} FROM changed
            """);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer, Value = (object?)limit?.BatchSize ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer, Value = (object?)(int?)limit?.Window.TotalMilliseconds ?? DBNull.Value });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new LimitChange(reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1), limit);
    }

    /// <summary>
    /// The cancel of a tail [started, total): `started` moves to `total`, so the pending index and the claim
    /// let go of it, and `cancelled_from` keeps where it began. The statement sees the row before it, so
    /// `cancelled_from = started` takes the old counter; with every id handed out final, it finishes the ingestion.
    /// </summary>
    private static string CancelSql(string now, CancelReason reason) =>
        $"""
        UPDATE ingestions SET cancelled_from = started, started = total, cancelled_at = {now}, cancel_reason = {(int)reason},
            finished_at = CASE WHEN completed >= started THEN {now} ELSE finished_at END
        """;

    /// <summary>Expires, in the claim's transaction, the waiting ids whose <c>not_after</c> has passed; how many.</summary>
    private static async Task<int> ExpireDueAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var expire = new NpgsqlCommand($"""
            WITH expired AS ({CancelSql(NowCeilingMs, CancelReason.Expired)} WHERE started < total AND not_after <= clock_timestamp() RETURNING priority, total - cancelled_from AS ids),
            counted AS ({PostgresTotals.StartCancelled("expired")})
            SELECT coalesce(sum(ids), 0)::integer FROM expired
            """, connection, transaction);
        return (int)(await expire.ExecuteScalarAsync(cancellationToken))!;
    }
}
