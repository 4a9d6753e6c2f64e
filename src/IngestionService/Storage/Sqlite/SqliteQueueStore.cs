using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Scheduling;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// The embedded store's write path. Submissions go through the group commit; claims, completions and
/// abandons take the write lock, run one transaction, and keep <see cref="SqliteDatabase"/>'s totals, pause
/// and memo in step with what they commit. Time is this process's clock: only this process writes the file.
/// </summary>
public sealed partial class SqliteQueueStore(SqliteDatabase database, TimeProvider clock, ILogger<SqliteQueueStore> logger) : IQueueStore, IAsyncDisposable
{
    internal const string FindKeySql = "SELECT request_hash, ingestion_id FROM idempotency_keys WHERE key = $key AND expires_at > $now";

    private SqliteGroupCommit? _groupCommit;

    /// <summary>Only this process writes the file: the wake-up signal tells the dispatcher everything.</summary>
    public TimeSpan? PollInterval => null;

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await database.OpenAsync(cancellationToken);

        // This store serves one process, so a window still marked running was left by a process that
        // died mid-fetch: its ids go back to the queue and are fetched again (at-least-once).
        foreach (var window in await ReadRunningWindowsAsync(cancellationToken))
        {
            await AbandonWindowAsync(window, cancellationToken);
            LogRecoveredWindow(logger, window.Seq, window.Items.Count);
        }

        await database.LoadTotalsAsync(cancellationToken);
        _groupCommit = new SqliteGroupCommit(database);
        database.Checkpointer!.Start();
    }

    public Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken) =>
        (_groupCommit ?? throw new InvalidOperationException("The store is not initialized: call InitializeAsync at start-up.")).EnqueueAsync(ingestion);

    public async Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, CancellationToken cancellationToken)
    {
        using var session = await database.Readers.RentAsync(cancellationToken);
        var command = session.Command(FindKeySql, "$key", "$now");
        command.Parameters[0].Value = key;
        command.Parameters[1].Value = clock.GetUtcNow().ToUnixTimeMilliseconds();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Earlier(reader, requestHash) : null;
    }

    internal static EnqueueResult Earlier(SqliteDataReader reader, byte[] requestHash) =>
        EnqueueResult.Earlier(SqliteIds.Read(reader, 1), (byte[])reader.GetValue(0), requestHash);

    public async Task<WindowClaim> ClaimWindowAsync(int maxIds, WindowSpacing spacing, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIds, 1);
        return await database.WriteAsync(async (writer, transaction) =>
        {
            var now = clock.GetUtcNow();

            // The log's newest window counts, so the limit holds across restarts. A window still running can
            // only be this process's own (start-up recovers the rest), and the dispatcher does not ask while
            // it runs one; the rule refuses anyway, so the in-flight bound is a property of the store.
            var (facts, overriding, limitVersion) = await ReadLimiterFactsAsync(writer, transaction, cancellationToken);
            if (overriding is not null)
            {
                (maxIds, spacing) = (overriding.BatchSize, spacing with { Window = overriding.Window });
            }

            var admission = AdmissionRule.Decide(facts, now, spacing, recheckWhileRunning: spacing.Window);
            if (!admission.Admitted)
            {
                return WindowClaim.Refused(admission) with { Override = overriding, LimitVersion = limitVersion };
            }

            var expired = await ExpireDueAsync(writer, transaction, now, cancellationToken);
            var expiredIds = expired.Sum(e => e.Count);

            var requeued = new List<QueuedId>(maxIds);
            await using (var command = writer.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = """
                    SELECT q.ingestion_seq, i.id, i.priority, i.created_at, q.position, coalesce(r.attempts, 0), coalesce(r.throttled, 0)
                    FROM requeued q CROSS JOIN ingestions i ON i.seq = q.ingestion_seq
                    LEFT JOIN results r ON r.ingestion_seq = q.ingestion_seq AND r.position = q.position
                    WHERE q.not_before <= $now
                    ORDER BY i.priority, i.created_at, q.ingestion_seq, q.position
                    LIMIT $limit
                    """;
                command.Parameters.AddWithValue("$limit", maxIds);
                command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    requeued.Add(new QueuedId(reader.GetInt64(0), SqliteIds.Read(reader, 1), (Priority)reader.GetInt32(2), SqliteIds.Time(reader, 3), reader.GetInt32(4), Requeued: true, reader.GetInt32(5), reader.GetInt32(6)));
                }
            }

            // The next ingestions with unstarted ids, from the partial index; each gives at least one id.
            var unstarted = new List<QueuedId>(maxIds);
            await using (var command = writer.CreateCommand())
            {
                command.Transaction = transaction;
                command.CommandText = """
                    SELECT seq, id, priority, created_at, started, total
                    FROM ingestions
                    WHERE started < total
                    ORDER BY priority, created_at, seq
                    LIMIT $limit
                    """;
                command.Parameters.AddWithValue("$limit", maxIds);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken)
                    && QueueOrder.AddUnstarted(unstarted, maxIds, reader.GetInt64(0), SqliteIds.Read(reader, 1), (Priority)reader.GetInt32(2), SqliteIds.Time(reader, 3), reader.GetInt32(4), reader.GetInt32(5)))
                {
                }
            }

            var plan = QueueOrder.Merge(requeued, unstarted, maxIds);
            if (plan.IsEmpty)
            {
                // Perhaps ids wait out a retry delay: say when the first is due.
                await using var due = writer.CreateCommand();
                due.Transaction = transaction;
                due.CommandText = "SELECT min(not_before) FROM requeued";
                var claim = await due.ExecuteScalarAsync(cancellationToken) is long first
                    ? WindowClaim.NothingDueFor(DateTimeOffset.FromUnixTimeMilliseconds(first) - now)
                    : WindowClaim.NothingWaits;
                if (expiredIds > 0)
                {
                    await database.CommitAsync(transaction, cancellationToken);
                    CountCancelled(expired);
                }

                return claim with { Expired = expiredIds, Override = overriding, LimitVersion = limitVersion };
            }

            var items = plan.Chosen.Select(id => id.ToItem(SqliteIds.ReadOne(writer, id.IngestionSeq, id.Position))).ToArray();
            var startedAt = Milliseconds.Ceiling(now);
            var windowSeq = await InsertWindowAsync(writer, transaction, startedAt, new RateLimit(maxIds, spacing.Window), items, cancellationToken);
            await TakeFromQueueAsync(writer, transaction, plan, cancellationToken);

            await database.CommitAsync(transaction, cancellationToken);
            CountCancelled(expired);
            foreach (var id in plan.Chosen)
            {
                if (id.Requeued)
                {
                    database.Totals.AddRequeued(id.Priority, -1);
                }
                else
                {
                    database.Totals.AddStarted(id.Priority, 1);
                }
            }

            return WindowClaim.Acquired(new ClaimedWindow(windowSeq, startedAt, items)) with { Expired = expiredIds, Override = overriding, LimitVersion = limitVersion };
        }, cancellationToken);
    }

    /// <summary>
    /// The newest window's start, finish, pause and Window, whether any window runs, whether the queue is
    /// paused, and the operator's override of the limit (null: the configured one is in force).
    /// </summary>
    private static async Task<(LimiterFacts Facts, RateLimit? Override, long LimitVersion)> ReadLimiterFactsAsync(SqliteConnection writer, SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = writer.CreateCommand();
        command.Transaction = transaction;

        // Only the newest window can hold a pause: none starts after it until the pause is over.
        command.CommandText = """
            SELECT newest.started_at, newest.finished_at, newest.paused_until, EXISTS (SELECT 1 FROM windows WHERE state = 0),
                   (SELECT paused_at IS NOT NULL FROM queue_control WHERE id = 1), newest.window_ms, limits.batch_size, limits.window_ms, coalesce(limits.seq, 0)
            FROM (SELECT 1)
            LEFT JOIN (SELECT started_at, paused_until, finished_at, window_ms FROM windows ORDER BY seq DESC LIMIT 1) newest
            LEFT JOIN (SELECT seq, batch_size, window_ms FROM limit_changes ORDER BY seq DESC LIMIT 1) limits
            """;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var facts = new LimiterFacts(
            SqliteIds.NullableTime(reader, 0), SqliteIds.NullableTime(reader, 1), SqliteIds.NullableTime(reader, 2), reader.GetBoolean(3), reader.GetBoolean(4),
            LastWindow: reader.IsDBNull(5) ? null : TimeSpan.FromMilliseconds(reader.GetInt64(5)));
        return (facts, reader.IsDBNull(6) ? null : new RateLimit(reader.GetInt32(6), TimeSpan.FromMilliseconds(reader.GetInt64(7))), reader.GetInt64(8));
    }

    private static async Task<long> InsertWindowAsync(SqliteConnection writer, SqliteTransaction transaction, DateTimeOffset startedAt, RateLimit limit, WindowItem[] items, CancellationToken cancellationToken)
    {
        long windowSeq;
        await using (var command = writer.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = "INSERT INTO windows (started_at, state, id_count, window_ms, batch_size) VALUES ($started_at, 0, $id_count, $window_ms, $batch_size) RETURNING seq";
            command.Parameters.AddWithValue("$started_at", startedAt.ToUnixTimeMilliseconds());
            command.Parameters.AddWithValue("$window_ms", (long)limit.Window.TotalMilliseconds);
            command.Parameters.AddWithValue("$batch_size", limit.BatchSize);
            command.Parameters.AddWithValue("$id_count", items.Length);
            windowSeq = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
        }

        await using var insert = writer.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = """
            INSERT INTO window_items (window_seq, ingestion_seq, first_pos, count, ids, priority)
            VALUES ($window_seq, $ingestion_seq, $first_pos, $count, $ids, $priority)
            """;
        insert.Parameters.AddWithValue("$window_seq", windowSeq);
        var ingestionSeq = insert.Parameters.Add("$ingestion_seq", SqliteType.Integer);
        var firstPos = insert.Parameters.Add("$first_pos", SqliteType.Integer);
        var count = insert.Parameters.Add("$count", SqliteType.Integer);
        var ids = insert.Parameters.Add("$ids", SqliteType.Blob);
        var priority = insert.Parameters.Add("$priority", SqliteType.Integer);
        foreach (var run in PositionRuns.OfWindow(items))
        {
            ingestionSeq.Value = run.IngestionSeq;
            priority.Value = (int)items.First(item => item.IngestionSeq == run.IngestionSeq).Priority;
            firstPos.Value = run.FirstPosition;
            count.Value = run.Ids.Length;
            ids.Value = IdBlob.Pack(run.Ids);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        return windowSeq;
    }

    /// <summary>Moves each ingestion's started counter past its ids taken, and takes the requeued ids off their list.</summary>
    private static async Task TakeFromQueueAsync(SqliteConnection writer, SqliteTransaction transaction, WindowPlan plan, CancellationToken cancellationToken)
    {
        await using (var advance = writer.CreateCommand())
        {
            advance.Transaction = transaction;
            advance.CommandText = "UPDATE ingestions SET started = started + $count WHERE seq = $seq";
            var seq = advance.Parameters.Add("$seq", SqliteType.Integer);
            var count = advance.Parameters.Add("$count", SqliteType.Integer);
            foreach (var (ingestionSeq, taken) in plan.Advances)
            {
                seq.Value = ingestionSeq;
                count.Value = taken;
                await advance.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        await ForEachPositionAsync(writer, transaction, "DELETE FROM requeued WHERE ingestion_seq = $seq AND position = $position", plan.Unqueued.Select(id => (id.IngestionSeq, id.Position)), cancellationToken);
    }

    /// <summary>Runs <paramref name="sql"/>, which names <c>$seq</c> and <c>$position</c>, once for each position in the transaction.</summary>
    private static async Task ForEachPositionAsync(SqliteConnection writer, SqliteTransaction transaction, string sql, IEnumerable<(long IngestionSeq, int Position)> positions, CancellationToken cancellationToken)
    {
        await using var command = writer.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        var seq = command.Parameters.Add("$seq", SqliteType.Integer);
        var position = command.Parameters.Add("$position", SqliteType.Integer);
        foreach (var (ingestionSeq, at) in positions)
        {
            seq.Value = ingestionSeq;
            position.Value = at;
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_groupCommit is not null)
        {
            await _groupCommit.DisposeAsync();
        }
    }

    [LoggerMessage(EventId = LogEvents.RecoveredWindow, Level = LogLevel.Warning, Message = "Window {WindowSeq} was left running by a process that stopped; its {IdCount} ids are back in the queue and will be fetched again")]
    private static partial void LogRecoveredWindow(ILogger logger, long windowSeq, int idCount);
}
