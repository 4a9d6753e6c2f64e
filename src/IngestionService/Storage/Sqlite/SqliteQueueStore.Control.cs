using IngestionService.Ingest;
using IngestionService.Scheduling;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>An operator's actions on the embedded queue: each one transaction under the write lock, then kept in <see cref="SqliteDatabase"/>.</summary>
public sealed partial class SqliteQueueStore
{
    public async Task<QueuePause> PauseQueueAsync(string? reason, CancellationToken cancellationToken)
    {
        return await database.WriteAsync(async (writer, transaction) =>
        {
            await using var pause = writer.CreateCommand();
            pause.Transaction = transaction;
            pause.CommandText = """
                UPDATE queue_control SET paused_at = coalesce(paused_at, $now), pause_reason = coalesce($reason, pause_reason)
                WHERE id = 1
                RETURNING paused_at, pause_reason
                """;
            pause.Parameters.AddWithValue("$now", Milliseconds.Ceiling(clock.GetUtcNow()).ToUnixTimeMilliseconds());
            pause.Parameters.AddWithValue("$reason", (object?)reason ?? DBNull.Value);
            QueuePause paused;
            await using (var reader = await pause.ExecuteReaderAsync(cancellationToken))
            {
                await reader.ReadAsync(cancellationToken);
                paused = new QueuePause(SqliteIds.Time(reader, 0), reader.IsDBNull(1) ? null : reader.GetString(1));
            }

            await transaction.CommitAsync(cancellationToken);
            database.QueuePause = paused;
            return paused;
        }, cancellationToken);
    }

    public async Task<bool> ResumeQueueAsync(CancellationToken cancellationToken)
    {
        return await database.WriteAsync(async (writer, transaction) =>
        {
            await using var resume = writer.CreateCommand();
            resume.Transaction = transaction;
            resume.CommandText = "UPDATE queue_control SET paused_at = NULL, pause_reason = NULL WHERE id = 1 AND paused_at IS NOT NULL";
            var resumed = await resume.ExecuteNonQueryAsync(cancellationToken) == 1;
            await transaction.CommitAsync(cancellationToken);
            database.QueuePause = null;
            return resumed;
        }, cancellationToken);
    }

    public async Task<CancelOutcome> CancelAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        return await database.WriteAsync(async (writer, transaction) =>
        {
            await using var cancel = writer.CreateCommand();
            cancel.Transaction = transaction;
            cancel.CommandText = $"{CancelSql} WHERE id = $id AND started < total AND cancelled_from IS NULL {CancelledReturning}";
            cancel.Parameters.AddWithValue("$id", SqliteIds.Bytes(ingestionId));
            cancel.Parameters.AddWithValue("$now", Milliseconds.Ceiling(clock.GetUtcNow()).ToUnixTimeMilliseconds());
            cancel.Parameters.AddWithValue("$reason", (int)CancelReason.Requested);
            var cancelled = await ReadCancelledAsync(cancel, cancellationToken);
            if (cancelled.Count == 0)
            {
                await using var look = writer.CreateCommand();
                look.Transaction = transaction;
                look.CommandText = "SELECT cancelled_from IS NOT NULL FROM ingestions WHERE id = $id";
                look.Parameters.AddWithValue("$id", SqliteIds.Bytes(ingestionId));
                return await look.ExecuteScalarAsync(cancellationToken) switch
                {
                    null => CancelOutcome.Unknown,
                    1L => CancelOutcome.AlreadyCancelled,
                    _ => CancelOutcome.NothingToCancel,
                };
            }

            await database.CommitAsync(transaction, cancellationToken);
            CountCancelled(cancelled);
            return CancelOutcome.Cancelled;
        }, cancellationToken);
    }

    // A cancel hands the tail [started, total) to nobody: `started` moves to `total` (so the pending index,
    // the claim and the started totals let go of it) and `cancelled_from` keeps where it began.
    // With nothing in flight or waiting for a retry (every id handed out has its final result), the cancel
    // also finishes the ingestion; otherwise its last result will.
    private const string CancelSql = """
        UPDATE ingestions SET cancelled_from = started, started = total, cancelled_at = $now, cancel_reason = $reason,
            finished_at = CASE WHEN completed >= started THEN $now ELSE finished_at END
        """;
    private const string CancelledReturning = "RETURNING priority, total - cancelled_from";

    /// <summary>Expires, in the claim's transaction, the waiting ids whose <c>not_after</c> is not after <paramref name="now"/>.</summary>
    private static async Task<IReadOnlyList<(Priority Priority, int Count)>> ExpireDueAsync(SqliteConnection writer, SqliteTransaction transaction, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var expire = writer.CreateCommand();
        expire.Transaction = transaction;
        expire.CommandText = $"{CancelSql} WHERE started < total AND not_after <= $now {CancelledReturning}";
        expire.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        expire.Parameters.AddWithValue("$reason", (int)CancelReason.Expired);
        return await ReadCancelledAsync(expire, cancellationToken);
    }

    private static async Task<IReadOnlyList<(Priority Priority, int Count)>> ReadCancelledAsync(SqliteCommand command, CancellationToken cancellationToken)
    {
        var cancelled = new List<(Priority, int)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            cancelled.Add(((Priority)reader.GetInt32(0), reader.GetInt32(1)));
        }

        return cancelled;
    }

    /// <summary>After the commit: cancelled ids left the queue like started ones (see <see cref="QueueTotals.IdsAhead"/>).</summary>
    private void CountCancelled(IReadOnlyList<(Priority Priority, int Count)> cancelled)
    {
        foreach (var (priority, count) in cancelled)
        {
            database.Totals.AddStarted(priority, count);
        }
    }

    public async Task<LimitChange> SetLimitAsync(RateLimit? limit, CancellationToken cancellationToken)
    {
        return await database.WriteAsync(async (writer, transaction) =>
        {
            await using var insert = writer.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = "INSERT INTO limit_changes (changed_at, batch_size, window_ms) VALUES ($now, $batch_size, $window_ms) RETURNING seq";
            var changedAt = Milliseconds.Ceiling(clock.GetUtcNow());
            insert.Parameters.AddWithValue("$now", changedAt.ToUnixTimeMilliseconds());
            insert.Parameters.AddWithValue("$batch_size", (object?)limit?.BatchSize ?? DBNull.Value);
            insert.Parameters.AddWithValue("$window_ms", (object?)(long?)limit?.Window.TotalMilliseconds ?? DBNull.Value);
            var seq = (long)(await insert.ExecuteScalarAsync(cancellationToken))!;
            await transaction.CommitAsync(cancellationToken);
            return new LimitChange(seq, changedAt, limit);
        }, cancellationToken);
    }
}
