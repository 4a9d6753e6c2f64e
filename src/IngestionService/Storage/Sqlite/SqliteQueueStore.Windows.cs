using IngestionService.Ingest;
using IngestionService.Scheduling;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>How a claimed window ends in the embedded store: completed with its answers, or abandoned back to the queue.</summary>
public sealed partial class SqliteQueueStore
{
    public async Task<DateTimeOffset> CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        var finishedAt = Milliseconds.Ceiling(clock.GetUtcNow());
        var tally = WindowTally.Of(window, outcome, finishedAt);
        return await database.WriteAsync(async (writer, transaction) =>
        {
            var finished = finishedAt.ToUnixTimeMilliseconds();
            await using (var close = writer.CreateCommand())
            {
                close.Transaction = transaction;
                // Starts are stored rounded up to the millisecond; a window finished within that millisecond
                // must not look as if it finished before it started.
                close.CommandText = """
                    UPDATE windows SET state = 1, finished_at = max($finished_at, started_at), paused_until = $paused_until
                    WHERE seq = $seq AND state = 0
                    """;
                close.Parameters.AddWithValue("$finished_at", finished);
                close.Parameters.AddWithValue("$paused_until", (object?)tally.PausedUntil?.ToUnixTimeMilliseconds() ?? DBNull.Value);
                close.Parameters.AddWithValue("$seq", window.Seq);
                if (await close.ExecuteNonQueryAsync(cancellationToken) != 1)
                {
                    // Counting its ids twice would corrupt progress: a window is completed once or not at all.
                    throw new InvalidOperationException($"Window {window.Seq} is no longer running; its results are not stored.");
                }
            }

            await StoreResultsAsync(writer, transaction, window, outcome, finishedAt, cancellationToken);

            await using (var mark = writer.CreateCommand())
            {
                mark.Transaction = transaction;
                mark.CommandText = "UPDATE window_items SET marks = $marks WHERE ingestion_seq = $seq AND first_pos = $first_pos AND window_seq = $window_seq";
                var marks = mark.Parameters.Add("$marks", SqliteType.Blob);
                var seq = mark.Parameters.Add("$seq", SqliteType.Integer);
                var firstPosition = mark.Parameters.Add("$first_pos", SqliteType.Integer);
                mark.Parameters.AddWithValue("$window_seq", window.Seq);
                foreach (var run in tally.Marks)
                {
                    marks.Value = run.Marks;
                    seq.Value = run.IngestionSeq;
                    firstPosition.Value = run.FirstPosition;
                    await mark.ExecuteNonQueryAsync(cancellationToken);
                }
            }

            await using (var progress = writer.CreateCommand())
            {
                progress.Transaction = transaction;
                // The SET sees the row before the update: the last of its ids to reach a final state finishes it.
                progress.CommandText = """
                    UPDATE ingestions SET completed = completed + $count, failed = failed + $failed,
                        finished_at = CASE WHEN completed + $count >= coalesce(cancelled_from, total) THEN $finished_at ELSE finished_at END
                    WHERE seq = $seq
                    """;
                progress.Parameters.AddWithValue("$finished_at", finished);
                var seq = progress.Parameters.Add("$seq", SqliteType.Integer);
                var count = progress.Parameters.Add("$count", SqliteType.Integer);
                var failed = progress.Parameters.Add("$failed", SqliteType.Integer);
                foreach (var (ingestionSeq, completed, failures) in tally.Progress)
                {
                    seq.Value = ingestionSeq;
                    count.Value = completed;
                    failed.Value = failures;
                    await progress.ExecuteNonQueryAsync(cancellationToken);
                }
            }

            var priorities = await CurrentPrioritiesAsync(writer, transaction, tally.Retries.Select(retry => window.Items[retry].IngestionSeq), cancellationToken);
            await database.CommitAsync(transaction, cancellationToken);
            foreach (var retry in tally.Retries)
            {
                database.Totals.AddRequeued(priorities[window.Items[retry].IngestionSeq], 1);
            }

            if (tally.PausedUntil is { } until)
            {
                database.PausedUntil = until;
            }

            return finishedAt;
        }, cancellationToken);
    }

    /// <summary>Each id's latest outcome, and the ids to retry back in the queue from their next attempt.</summary>
    private static async Task StoreResultsAsync(SqliteConnection writer, SqliteTransaction transaction, ClaimedWindow window, WindowOutcome outcome, DateTimeOffset finishedAt, CancellationToken cancellationToken)
    {
        await using var store = writer.CreateCommand();
        store.Transaction = transaction;
        store.CommandText = """
            INSERT OR REPLACE INTO results
                (ingestion_seq, position, id, state, http_status, body, truncated, attempts, throttled, error, fetched_at, next_attempt_at, window_seq)
            VALUES ($ingestion_seq, $position, $id, $state, $http_status, $body, $truncated, $attempts, $throttled, $error, $fetched_at, $next_attempt_at, $window_seq)
            """;
        var ingestionSeq = store.Parameters.Add("$ingestion_seq", SqliteType.Integer);
        var position = store.Parameters.Add("$position", SqliteType.Integer);
        var id = store.Parameters.Add("$id", SqliteType.Integer);
        var state = store.Parameters.Add("$state", SqliteType.Integer);
        var httpStatus = store.Parameters.Add("$http_status", SqliteType.Integer);
        var body = store.Parameters.Add("$body", SqliteType.Text);
        var truncated = store.Parameters.Add("$truncated", SqliteType.Integer);
        var attempts = store.Parameters.Add("$attempts", SqliteType.Integer);
        var throttled = store.Parameters.Add("$throttled", SqliteType.Integer);
        var error = store.Parameters.Add("$error", SqliteType.Text);
        var nextAttemptAt = store.Parameters.Add("$next_attempt_at", SqliteType.Integer);
        store.Parameters.AddWithValue("$fetched_at", finishedAt.ToUnixTimeMilliseconds());
        store.Parameters.AddWithValue("$window_seq", window.Seq);

        await using var requeue = writer.CreateCommand();
        requeue.Transaction = transaction;
        requeue.CommandText = "INSERT OR REPLACE INTO requeued (ingestion_seq, position, not_before) VALUES ($seq, $position, $not_before)";
        var requeueSeq = requeue.Parameters.Add("$seq", SqliteType.Integer);
        var requeuePosition = requeue.Parameters.Add("$position", SqliteType.Integer);
        var notBefore = requeue.Parameters.Add("$not_before", SqliteType.Integer);

        for (var i = 0; i < window.Items.Count; i++)
        {
            var item = window.Items[i];
            var fetch = outcome.Fetches[i];
            ingestionSeq.Value = item.IngestionSeq;
            position.Value = item.Position;
            id.Value = item.Id;
            state.Value = (int)fetch.State;
            httpStatus.Value = (object?)fetch.HttpStatus ?? DBNull.Value;
            body.Value = (object?)fetch.Body ?? DBNull.Value;
            truncated.Value = fetch.BodyTruncated;
            attempts.Value = fetch.Attempts;
            throttled.Value = fetch.Throttled;
            error.Value = (object?)fetch.Error ?? DBNull.Value;
            nextAttemptAt.Value = (object?)WindowTally.NextAttemptAt(fetch, finishedAt)?.ToUnixTimeMilliseconds() ?? DBNull.Value;
            await store.ExecuteNonQueryAsync(cancellationToken);

            if (fetch.State == FetchState.Retrying)
            {
                requeueSeq.Value = item.IngestionSeq;
                requeuePosition.Value = item.Position;
                notBefore.Value = WindowTally.DueAt(fetch, finishedAt).ToUnixTimeMilliseconds();
                await requeue.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    public async Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        await database.WriteAsync(async (writer, transaction) =>
        {
            await using (var close = writer.CreateCommand())
            {
                close.Transaction = transaction;
                close.CommandText = "UPDATE windows SET state = 2 WHERE seq = $seq AND state = 0";
                close.Parameters.AddWithValue("$seq", window.Seq);
                if (await close.ExecuteNonQueryAsync(cancellationToken) != 1)
                {
                    return;
                }
            }

            await ForEachPositionAsync(writer, transaction, "INSERT OR IGNORE INTO requeued (ingestion_seq, position) VALUES ($seq, $position)", window.Items.Select(item => (item.IngestionSeq, item.Position)), cancellationToken);

            var priorities = await CurrentPrioritiesAsync(writer, transaction, window.Items.Select(item => item.IngestionSeq), cancellationToken);
            await database.CommitAsync(transaction, cancellationToken);
            foreach (var item in window.Items)
            {
                database.Totals.AddRequeued(priorities[item.IngestionSeq], 1);
            }
        }, cancellationToken);
    }

    /// <summary>
    /// The priority of each ingestion now: an operator may have moved one since its window was claimed,
    /// and the ids it hands back wait (and are counted) at the new one.
    /// </summary>
    private static async Task<Dictionary<long, Priority>> CurrentPrioritiesAsync(SqliteConnection writer, SqliteTransaction transaction, IEnumerable<long> ingestionSeqs, CancellationToken cancellationToken)
    {
        var priorities = new Dictionary<long, Priority>();
        await using var read = writer.CreateCommand();
        read.Transaction = transaction;
        read.CommandText = "SELECT priority FROM ingestions WHERE seq = $seq";
        var seq = read.Parameters.Add("$seq", SqliteType.Integer);
        foreach (var ingestionSeq in ingestionSeqs)
        {
            if (!priorities.ContainsKey(ingestionSeq))
            {
                seq.Value = ingestionSeq;
                priorities[ingestionSeq] = (Priority)(long)(await read.ExecuteScalarAsync(cancellationToken))!;
            }
        }

        return priorities;
    }

    private async Task<IReadOnlyList<ClaimedWindow>> ReadRunningWindowsAsync(CancellationToken cancellationToken)
    {
        var windows = new Dictionary<long, (DateTimeOffset StartedAt, List<WindowItem> Items)>();
        await using var command = database.Writer.CreateCommand();
        command.CommandText = """
            SELECT w.seq, w.started_at, wi.ingestion_seq, i.id, i.priority, wi.first_pos, wi.ids
            FROM windows w
            JOIN window_items wi ON wi.window_seq = w.seq
            JOIN ingestions i ON i.seq = wi.ingestion_seq
            WHERE w.state = 0
            ORDER BY w.seq
            """;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var seq = reader.GetInt64(0);
            if (!windows.TryGetValue(seq, out var window))
            {
                window = (SqliteIds.Time(reader, 1), []);
                windows.Add(seq, window);
            }

            var ids = IdBlob.Unpack((byte[])reader.GetValue(6));
            for (var i = 0; i < ids.Length; i++)
            {
                window.Items.Add(new WindowItem(reader.GetInt64(2), SqliteIds.Read(reader, 3), (Priority)reader.GetInt32(4), reader.GetInt32(5) + i, ids[i]));
            }
        }

        return [.. windows.Select(pair => new ClaimedWindow(pair.Key, pair.Value.StartedAt, pair.Value.Items))];
    }
}
