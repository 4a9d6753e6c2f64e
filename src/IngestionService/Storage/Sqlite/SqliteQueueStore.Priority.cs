using IngestionService.Ingest;
using IngestionService.Scheduling;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// Moving an ingestion to another priority. The constant-time ids ahead (<see cref="QueueTotals.IdsAhead"/>)
/// rest on every id started at a priority lying ahead of every id still waiting there; an ingestion moved
/// into a priority can land ahead of ids already started, so the stored <c>ids_before</c> of the waiting
/// ingestions of both priorities is recomputed in the same transaction, from what waits ahead of each
/// now. That costs one pass over the waiting ingestions of the two priorities (and the cancelled ones among
/// them), once per move.
/// </summary>
public sealed partial class SqliteQueueStore
{
    public async Task<ReprioritiseOutcome> ReprioritiseAsync(Guid ingestionId, Priority priority, CancellationToken cancellationToken)
    {
        return await database.WriteAsync(async (writer, transaction) =>
        {
            await using var read = writer.CreateCommand();
            read.Transaction = transaction;
            read.CommandText = """
                SELECT seq, priority, total, started, (SELECT count(*) FROM requeued WHERE ingestion_seq = i.seq)
                FROM ingestions i WHERE id = $id
                """;
            read.Parameters.AddWithValue("$id", SqliteIds.Bytes(ingestionId));
            long seq, total, started, requeued;
            Priority from;
            await using (var reader = await read.ExecuteReaderAsync(cancellationToken))
            {
                if (!await reader.ReadAsync(cancellationToken))
                {
                    return ReprioritiseOutcome.Unknown;
                }

                (seq, from, total, started, requeued) = (reader.GetInt64(0), (Priority)reader.GetInt32(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4));
            }

            if (started == total && requeued == 0)
            {
                return ReprioritiseOutcome.NothingWaits;
            }

            if (from == priority)
            {
                return ReprioritiseOutcome.Unchanged;
            }

            await using (var move = writer.CreateCommand())
            {
                move.Transaction = transaction;
                move.CommandText = "UPDATE ingestions SET priority = $priority WHERE seq = $seq";
                move.Parameters.AddWithValue("$priority", (int)priority);
                move.Parameters.AddWithValue("$seq", seq);
                await move.ExecuteNonQueryAsync(cancellationToken);
            }

            // The totals as they will be once the ingestion has moved, for the recount of both priorities.
            var totals = database.Totals;
            await RecountIdsBeforeAsync(writer, transaction, from, totals.Started(from) - started, cancellationToken);
            await RecountIdsBeforeAsync(writer, transaction, priority, totals.Started(priority) + started, cancellationToken);

            await database.CommitAsync(transaction, cancellationToken);
            totals.Move(from, priority, total, started, requeued);
            return ReprioritiseOutcome.Moved;
        }, cancellationToken);
    }

    /// <summary>
    /// Sets each waiting ingestion's <c>ids_before</c> at <paramref name="priority"/> so that
    /// <see cref="QueueTotals.IdsAhead"/> gives the unstarted ids ahead of it now: the started total, plus
    /// the unstarted ids of the waiting ingestions ahead, less the cancelled tails behind (which the read adds back).
    /// </summary>
    private static async Task RecountIdsBeforeAsync(SqliteConnection writer, SqliteTransaction transaction, Priority priority, long started, CancellationToken cancellationToken)
    {
        await using var recount = writer.CreateCommand();
        recount.Transaction = transaction;
        recount.CommandText = """
            WITH frontier AS (
                SELECT created_at, seq FROM ingestions WHERE priority = $priority AND started < total ORDER BY created_at, seq LIMIT 1),
            considered AS (
                SELECT seq, created_at, 1 AS waiting, total - started AS unstarted, 0 AS tail FROM ingestions WHERE priority = $priority AND started < total
                UNION ALL
                -- Only tails behind the first waiting ingestion can be behind a waiting one: older ones are not read.
                SELECT i.seq, i.created_at, 0, 0, i.total - i.cancelled_from FROM ingestions i, frontier f
                WHERE i.priority = $priority AND i.cancelled_from < i.total AND (i.created_at, i.seq) > (f.created_at, f.seq)),
            ordered AS (
                SELECT seq, waiting,
                       coalesce(sum(unstarted) OVER (ORDER BY created_at, seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS unstarted_ahead,
                       coalesce(sum(tail) OVER (ORDER BY created_at, seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS tails_behind
                FROM considered)
            UPDATE ingestions SET ids_before = $started + ordered.unstarted_ahead - ordered.tails_behind
            FROM ordered WHERE ordered.seq = ingestions.seq AND ordered.waiting = 1
            """;
        recount.Parameters.AddWithValue("$priority", (int)priority);
        recount.Parameters.AddWithValue("$started", started);
        await recount.ExecuteNonQueryAsync(cancellationToken);
    }
}
