using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Scheduling;
using Npgsql;
using NpgsqlTypes;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The shared limiter: every claim of every instance first locks the single <c>limiter</c> row
/// (<c>SELECT ... FOR UPDATE</c>), so claims are serialised. Under that lock it hands back the ids of
/// running windows whose lease expired, reads the limiter's facts and the database's clock, asks
/// <see cref="AdmissionRule"/>, and takes the next ids in the global order.
/// </summary>
public sealed partial class PostgresQueueStore
{
    // Rounds up to whole milliseconds, as every stored time is, so the log never shows a start earlier than the real one.
    private const string NowCeilingMs = "date_trunc('milliseconds', clock_timestamp() + interval '999 microseconds')";

    public async Task<WindowClaim> ClaimWindowAsync(int maxIds, WindowSpacing spacing, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIds, 1);
        var sentAt = System.Diagnostics.Stopwatch.GetTimestamp(); // before the lease is set, so the local deadline comes first
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // Serialises every claim of every instance; held until commit or rollback.
        await LockLimiterAsync(connection, transaction, cancellationToken);

        await TakeBackExpiredAsync(connection, transaction, cancellationToken);

        // Refusals still commit: windows taken back from dead instances above stay taken back.
        var (facts, leaseUntil, now, overriding, limitVersion) = await ReadLimiterFactsAsync(connection, transaction, spacing, cancellationToken);
        if (overriding is not null)
        {
            (maxIds, spacing) = (overriding.BatchSize, spacing with { Window = overriding.Window });
        }

        // A running window may finish any moment (its owner will not tell us), or its owner may die.
        var recheck = leaseUntil is { } until && until - now < PollInterval!.Value ? until - now : PollInterval!.Value;
        var admission = AdmissionRule.Decide(facts, now, spacing, recheck);
        if (!admission.Admitted)
        {
            await transaction.CommitAsync(cancellationToken);
            return WindowClaim.Refused(admission) with { Override = overriding, LimitVersion = limitVersion };
        }

        var expired = await ExpireDueAsync(connection, transaction, cancellationToken);

        var requeued = new List<QueuedId>(maxIds);
        await using (var command = new NpgsqlCommand("""
            SELECT q.ingestion_seq, i.id, i.priority, i.created_at, q.position, coalesce(r.attempts, 0), coalesce(r.throttled, 0)
            FROM requeued q JOIN ingestions i ON i.seq = q.ingestion_seq
            LEFT JOIN results r ON r.ingestion_seq = q.ingestion_seq AND r.position = q.position
            WHERE q.not_before <= clock_timestamp()
            ORDER BY i.priority, i.created_at, q.ingestion_seq, q.position
            LIMIT $1
            """, connection, transaction))
        {
            command.Parameters.AddWithValue(maxIds);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                requeued.Add(new QueuedId(reader.GetInt64(0), reader.GetGuid(1), (Priority)reader.GetInt16(2), reader.GetFieldValue<DateTimeOffset>(3), reader.GetInt32(4), Requeued: true, reader.GetInt32(5), reader.GetInt32(6)));
            }
        }

        var unstarted = new List<QueuedId>(maxIds);
        await using (var command = new NpgsqlCommand("""
            SELECT seq, id, priority, created_at, started, total
            FROM ingestions
            WHERE started < total
            ORDER BY priority, created_at, seq
            LIMIT $1
            """, connection, transaction))
        {
            command.Parameters.AddWithValue(maxIds);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken)
                && QueueOrder.AddUnstarted(unstarted, maxIds, reader.GetInt64(0), reader.GetGuid(1), (Priority)reader.GetInt16(2), reader.GetFieldValue<DateTimeOffset>(3), reader.GetInt32(4), reader.GetInt32(5)))
            {
            }
        }

        var plan = QueueOrder.Merge(requeued, unstarted, maxIds);
        if (plan.IsEmpty)
        {
            // Perhaps ids wait out a retry delay: say when the first is due.
            await using var due = new NpgsqlCommand("SELECT min(not_before) - clock_timestamp() FROM requeued", connection, transaction);
            var dueIn = await due.ExecuteScalarAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return (dueIn is TimeSpan first ? WindowClaim.NothingDueFor(first) : WindowClaim.NothingWaits) with { Expired = expired, Override = overriding, LimitVersion = limitVersion };
        }

        var items = await ReadItemsAsync(connection, transaction, plan, cancellationToken);
        var (windowSeq, startedAt) = await InsertWindowAsync(connection, transaction, items, new RateLimit(maxIds, spacing.Window), cancellationToken);
        await TakeFromQueueAsync(connection, transaction, plan, startedAt, spacing.Window, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        var lost = _leases.Start(windowSeq, sentAt);
        return WindowClaim.Acquired(new ClaimedWindow(windowSeq, startedAt, items) { Lost = lost }) with { Expired = expired, Override = overriding, LimitVersion = limitVersion };
    }

    /// <summary>
    /// Takes the <c>limiter</c> row's lock until the transaction ends: claims, cancels and moves of every
    /// instance run one at a time, so none hands out or takes positions another has just changed.
    /// </summary>
    private static async Task LockLimiterAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var lockRow = new NpgsqlCommand("SELECT 1 FROM limiter WHERE id = 1 FOR UPDATE", connection, transaction);
        await lockRow.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Windows whose owner stopped renewing their lease: dead (or cut off) instances. Their ids go back to
    /// the queue; the windows stay in the log as abandoned, so their starts still count.
    /// </summary>
    private async Task TakeBackExpiredAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var expire = new NpgsqlCommand(AbandonSql("lease_until < clock_timestamp()"), connection, transaction);
        await using var reader = await expire.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            LogExpiredWindow(_logger, reader.GetInt64(0), reader.GetString(1), reader.GetInt32(2));
        }
    }

    /// <summary>The limiter's facts, the earliest lease of a window still running, the database's clock, and the operator's override of the limit, read together.</summary>
    private static async Task<(LimiterFacts Facts, DateTimeOffset? LeaseUntil, DateTimeOffset Now, RateLimit? Override, long LimitVersion)> ReadLimiterFactsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, WindowSpacing spacing, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT last_window_start, paused_until,
                   CASE WHEN $1 THEN (SELECT finished_at FROM windows ORDER BY seq DESC LIMIT 1) END,
                   (SELECT min(lease_until) FROM windows WHERE state = 0),
                   clock_timestamp(),
                   queue_paused_at IS NOT NULL,
                   last_window_ms, o.batch_size, o.window_ms, coalesce(o.seq, 0)
            FROM limiter LEFT JOIN LATERAL (SELECT seq, batch_size, window_ms FROM limit_changes ORDER BY seq DESC LIMIT 1) o ON true
            WHERE id = 1
            """, connection, transaction);
        command.Parameters.AddWithValue(spacing.FromFinish);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        DateTimeOffset? Time(int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);
        var leaseUntil = Time(3);
        var facts = new LimiterFacts(Time(0), Time(2), Time(1), WindowRunning: leaseUntil is not null, QueuePaused: reader.GetBoolean(5),
            LastWindow: reader.IsDBNull(6) ? null : TimeSpan.FromMilliseconds(reader.GetInt32(6)));
        var overriding = reader.IsDBNull(7) ? null : new RateLimit(reader.GetInt32(7), TimeSpan.FromMilliseconds(reader.GetInt32(8)));
        return (facts, leaseUntil, reader.GetFieldValue<DateTimeOffset>(4), overriding, reader.GetInt64(9));
    }

    /// <summary>Reads the ids of the chosen positions, each run of consecutive positions as one slice of its blob.</summary>
    private static async Task<WindowItem[]> ReadItemsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, WindowPlan plan, CancellationToken cancellationToken)
    {
        var chosen = plan.Chosen;
        var items = new WindowItem[chosen.Count];
        await using var slice = new NpgsqlCommand("SELECT substring(ids FROM $1 FOR $2) FROM ingestions WHERE seq = $3", connection, transaction);
        var from = slice.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer });
        var length = slice.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer });
        var seq = slice.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bigint });
        foreach (var run in plan.Slices)
        {
            var (start, count) = run.GetOffsetAndLength(chosen.Count);
            from.Value = (chosen[start].Position * IdBlob.BytesPerId) + 1;
            length.Value = count * IdBlob.BytesPerId;
            seq.Value = chosen[start].IngestionSeq;
            var ids = IdBlob.Unpack((byte[])(await slice.ExecuteScalarAsync(cancellationToken))!);
            for (var k = 0; k < count; k++)
            {
                items[start + k] = chosen[start + k].ToItem(ids[k]);
            }
        }

        return items;
    }

    private async Task<(long Seq, DateTimeOffset StartedAt)> InsertWindowAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, WindowItem[] items, RateLimit limit, CancellationToken cancellationToken)
    {
        long windowSeq;
        DateTimeOffset startedAt;
        await using (var insert = new NpgsqlCommand($"""
            INSERT INTO windows (started_at, state, id_count, owner, lease_until, window_ms, batch_size)
            VALUES ({NowCeilingMs}, 0, $1, $2, clock_timestamp() + $3, $4, $5)
            RETURNING seq, started_at
            """, connection, transaction))
        {
            insert.Parameters.AddWithValue(items.Length);
            insert.Parameters.AddWithValue(Owner);
            insert.Parameters.AddWithValue(_lease);
            insert.Parameters.AddWithValue((int)limit.Window.TotalMilliseconds);
            insert.Parameters.AddWithValue(limit.BatchSize);
            await using var reader = await insert.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            windowSeq = reader.GetInt64(0);
            startedAt = reader.GetFieldValue<DateTimeOffset>(1);
        }

        var runs = PositionRuns.OfWindow(items);
        await using var insertItems = new NpgsqlCommand("""
            INSERT INTO window_items (window_seq, ingestion_seq, first_pos, count, ids, priority)
            SELECT $1, r.ingestion_seq, r.first_pos, r.count, r.ids, r.priority
            FROM unnest($2::bigint[], $3::integer[], $4::integer[], $5::bytea[], $6::smallint[]) AS r(ingestion_seq, first_pos, count, ids, priority)
            """, connection, transaction);
        insertItems.Parameters.AddWithValue(windowSeq);
        insertItems.Parameters.AddWithValue(runs.Select(r => r.IngestionSeq).ToArray());
        insertItems.Parameters.AddWithValue(runs.Select(r => r.FirstPosition).ToArray());
        insertItems.Parameters.AddWithValue(runs.Select(r => r.Ids.Length).ToArray());
        insertItems.Parameters.AddWithValue(runs.Select(r => IdBlob.Pack(r.Ids)).ToArray());
        insertItems.Parameters.AddWithValue(runs.Select(r => (short)items.First(item => item.IngestionSeq == r.IngestionSeq).Priority).ToArray());
        await insertItems.ExecuteNonQueryAsync(cancellationToken);
        return (windowSeq, startedAt);
    }

    /// <summary>Moves each ingestion's started counter and its priority's started total, takes the requeued ids off their list, and records the start on the limiter row.</summary>
    private static async Task TakeFromQueueAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, WindowPlan plan, DateTimeOffset startedAt, TimeSpan window, CancellationToken cancellationToken)
    {
        if (plan.Advances.Count > 0)
        {
            await using var advance = new NpgsqlCommand($"""
                WITH advanced AS (
                    UPDATE ingestions i SET started = i.started + a.count
                    FROM unnest($1::bigint[], $2::integer[]) AS a(seq, count)
                    WHERE i.seq = a.seq)
                UPDATE queue_totals SET {PostgresTotals.Add("started", "($3::bigint[])")} WHERE id = 1
                """, connection, transaction);
            advance.Parameters.AddWithValue(plan.Advances.Select(a => a.IngestionSeq).ToArray());
            advance.Parameters.AddWithValue(plan.Advances.Select(a => a.Count).ToArray());
            advance.Parameters.AddWithValue(PostgresTotals.Deltas(plan.Chosen.Where(id => !id.Requeued), id => id.Priority, _ => 1));
            await advance.ExecuteNonQueryAsync(cancellationToken);
        }

        if (plan.Unqueued.Count > 0)
        {
            await using var unqueue = new NpgsqlCommand("""
                DELETE FROM requeued q
                USING unnest($1::bigint[], $2::integer[]) AS u(seq, position)
                WHERE q.ingestion_seq = u.seq AND q.position = u.position
                """, connection, transaction);
            unqueue.Parameters.AddWithValue(plan.Unqueued.Select(id => id.IngestionSeq).ToArray());
            unqueue.Parameters.AddWithValue(plan.Unqueued.Select(id => id.Position).ToArray());
            await unqueue.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var record = new NpgsqlCommand("UPDATE limiter SET last_window_start = $1, last_window_ms = $2 WHERE id = 1", connection, transaction);
        record.Parameters.AddWithValue(startedAt);
        record.Parameters.AddWithValue((int)window.TotalMilliseconds);
        await record.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(EventId = LogEvents.ExpiredWindow, Level = LogLevel.Warning, Message = "Window {WindowSeq} of {Owner} outlived its lease (the instance died or lost the database); its {IdCount} ids are back in the queue and will be fetched again")]
    private static partial void LogExpiredWindow(ILogger logger, long windowSeq, string owner, int idCount);
}
