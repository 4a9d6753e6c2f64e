using System.Collections.Concurrent;
using System.Globalization;
using IngestionService.Ingest;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The shared store: one PostgreSQL database behind any number of instances, which then behave as one
/// service with one queue and one rate limit.
/// </summary>
/// <remarks>
/// <para>Coordination is per claim, not by a leader: every <see cref="ClaimWindowAsync"/> first locks the
/// single <c>limiter</c> row (<c>SELECT ... FOR UPDATE</c>), so claims from all instances are serialised.
/// Under that lock it hands back the ids of running windows whose lease expired, refuses while a window
/// with a live lease runs (never more than one window of ids in flight) or while the last start is less
/// than a window ago, and otherwise takes the next ids in the global order. Every time involved comes
/// from the database's clock (<c>clock_timestamp()</c>), so hosts with skewed clocks still agree.</para>
/// <para>A running window belongs to the instance that claimed it (<c>owner</c>) until
/// <c>lease_until</c>; the owner renews the lease every third of <see cref="IngestionOptions.Lease"/>
/// while it fetches. An instance killed mid-window stops renewing; the first claim after the lease
/// expires marks the window abandoned and requeues its ids (at-least-once), and its start stays in the
/// log, so the slot it used still counts against the limit.</para>
/// </remarks>
public sealed partial class PostgresIngestionStore : IIngestionStore, IAsyncDisposable
{
    // Rounds up to whole milliseconds, as the SQLite store stores them, so the log never shows a start earlier than the real one.
    private const string NowCeilingMs = "date_trunc('milliseconds', clock_timestamp() + interval '999 microseconds')";

    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger<PostgresIngestionStore> _logger;
    private readonly TimeSpan _lease;
    private readonly ConcurrentDictionary<long, CancellationTokenSource> _heartbeats = new();

    public PostgresIngestionStore(NpgsqlDataSource dataSource, IOptions<IngestionOptions> options, ILogger<PostgresIngestionStore> logger)
    {
        _dataSource = dataSource;
        _logger = logger;
        _lease = options.Value.Lease;
        PollInterval = options.Value.PollInterval;
        Owner = string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():n}");
    }

    /// <summary>Names this instance in the <c>owner</c> column of the windows it runs: host, process id, and a nonce.</summary>
    public string Owner { get; }

    /// <summary>Other instances add work and finish windows: an idle dispatcher must look again on its own.</summary>
    public TimeSpan? PollInterval { get; }

    public static NpgsqlDataSource CreateDataSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "ingestion-service";
        return builder.Build();
    }

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        // No recovery here, unlike SQLite: a running window may belong to a live instance. Expired
        // leases are taken back by the claims themselves.
        await PostgresSchema.ApplyAsync(_dataSource, cancellationToken);
    }

    public async Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken)
    {
        // The created time that orders the queue is the database's, like every other time here, so two
        // instances with skewed clocks cannot reorder each other's requests. One statement, one commit.
        const string Insert = """
            INSERT INTO ingestions (id, priority, created_at, batch_size, total, ids)
            VALUES ($1, $2, date_trunc('milliseconds', clock_timestamp()), $3, $4, $5)
            """;
        if (ingestion.Idempotency is null)
        {
            await using var command = _dataSource.CreateCommand(Insert);
            AddIngestionParameters(command, ingestion);
            await command.ExecuteNonQueryAsync(cancellationToken);
            return new EnqueueResult(ingestion.Id, EnqueueOutcome.Created);
        }

        var key = ingestion.Idempotency;
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // Takes the key unless a live one holds it. A concurrent insert of the same key waits here for the
        // other transaction and then sees its row, so one key never creates two ingestions.
        await using (var claim = new NpgsqlCommand("""
            INSERT INTO idempotency_keys AS k (key, request_hash, ingestion_id, expires_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (key) DO UPDATE
            SET request_hash = excluded.request_hash, ingestion_id = excluded.ingestion_id, expires_at = excluded.expires_at
            WHERE k.expires_at <= clock_timestamp()
            RETURNING 1
            """, connection, transaction))
        {
            claim.Parameters.AddWithValue(key.Key);
            claim.Parameters.AddWithValue(key.RequestHash);
            claim.Parameters.AddWithValue(ingestion.Id);
            claim.Parameters.AddWithValue(key.ExpiresAt);
            if (await claim.ExecuteScalarAsync(cancellationToken) is null)
            {
                await using var existing = new NpgsqlCommand("SELECT request_hash, ingestion_id FROM idempotency_keys WHERE key = $1", connection, transaction);
                existing.Parameters.AddWithValue(key.Key);
                await using var reader = await existing.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                return Earlier(reader, key.RequestHash);
            }
        }

        await using (var sweep = new NpgsqlCommand("""
            DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE expires_at <= clock_timestamp() LIMIT 16)
            """, connection, transaction))
        {
            await sweep.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var insert = new NpgsqlCommand(Insert, connection, transaction))
        {
            AddIngestionParameters(insert, ingestion);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return new EnqueueResult(ingestion.Id, EnqueueOutcome.Created);
    }

    public async Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT request_hash, ingestion_id FROM idempotency_keys WHERE key = $1 AND expires_at > clock_timestamp()");
        command.Parameters.AddWithValue(key);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Earlier(reader, requestHash) : null;
    }

    private static EnqueueResult Earlier(NpgsqlDataReader reader, byte[] requestHash) =>
        new(reader.GetGuid(1), reader.GetFieldValue<byte[]>(0).AsSpan().SequenceEqual(requestHash) ? EnqueueOutcome.Replayed : EnqueueOutcome.KeyConflict);

    private static void AddIngestionParameters(NpgsqlCommand command, NewIngestion ingestion)
    {
        command.Parameters.AddWithValue(ingestion.Id);
        command.Parameters.AddWithValue((short)ingestion.Priority);
        command.Parameters.AddWithValue(ingestion.BatchSize);
        command.Parameters.AddWithValue(ingestion.Ids.Length);
        command.Parameters.AddWithValue(IdBlob.Pack(ingestion.Ids));
    }

    public async Task<WindowClaim> ClaimWindowAsync(DateTimeOffset now, int maxIds, WindowSpacing spacing, CancellationToken cancellationToken)
    {
        var window = spacing.Window;
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIds, 1);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);

        // Serialises every claim of every instance; held until commit or rollback.
        await ExecuteAsync(connection, transaction, "SELECT 1 FROM limiter WHERE id = 1 FOR UPDATE", cancellationToken);

        // Windows whose owner stopped renewing their lease: dead (or cut off) instances. Their ids go back
        // to the queue; the windows stay in the log as abandoned, so their starts still count.
        await using (var expire = new NpgsqlCommand("""
            WITH expired AS (
                UPDATE windows SET state = 2
                WHERE state = 0 AND lease_until < clock_timestamp()
                RETURNING seq, owner, id_count
            ), requeue AS (
                INSERT INTO requeued (ingestion_seq, position)
                SELECT wi.ingestion_seq, wi.first_pos + g.i
                FROM window_items wi
                JOIN expired e ON e.seq = wi.window_seq
                CROSS JOIN LATERAL generate_series(0, wi.count - 1) AS g(i)
                ON CONFLICT DO NOTHING
            )
            SELECT seq, owner, id_count FROM expired
            """, connection, transaction))
        await using (var reader = await expire.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                LogExpiredWindow(_logger, reader.GetInt64(0), reader.GetString(1), reader.GetInt32(2));
            }
        }

        // The limiter's rules, on the database's clock: no window still running, none started less than a
        // window ago, none during a pause the upstream asked for.
        TimeSpan? untilSpaced, untilLeaseEnds;
        await using (var limiter = new NpgsqlCommand("""
            SELECT greatest(last_window_start + $1, paused_until,
                            CASE WHEN $2 THEN (SELECT finished_at FROM windows ORDER BY seq DESC LIMIT 1) + $1 END) - clock_timestamp(),
                   (SELECT min(lease_until) FROM windows WHERE state = 0) - clock_timestamp()
            FROM limiter WHERE id = 1
            """, connection, transaction))
        {
            limiter.Parameters.AddWithValue(window);
            limiter.Parameters.AddWithValue(spacing.FromFinish);
            await using var reader = await limiter.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            untilSpaced = reader.IsDBNull(0) ? null : reader.GetTimeSpan(0);
            untilLeaseEnds = reader.IsDBNull(1) ? null : reader.GetTimeSpan(1);
        }

        // Refusals still commit: windows taken back from dead instances above stay taken back.
        if (untilLeaseEnds is { } leaseLeft)
        {
            // The running window may finish any moment (its owner will not tell us), or its owner may die.
            var recheck = leaseLeft < PollInterval!.Value ? leaseLeft : PollInterval.Value;
            await transaction.CommitAsync(cancellationToken);
            return WindowClaim.NotYet(untilSpaced is { } spaced && spaced > recheck ? spaced : recheck);
        }

        if (untilSpaced is { } wait && wait > TimeSpan.Zero)
        {
            await transaction.CommitAsync(cancellationToken);
            return WindowClaim.NotYet(wait);
        }

        var candidates = new List<Candidate>(maxIds * 2);
        // Handed back or waiting for a retry; a retry is due once its delay is over, its earlier calls counted.
        await using (var requeued = new NpgsqlCommand("""
            SELECT q.ingestion_seq, i.id, i.priority, i.created_at, q.position, coalesce(r.attempts, 0), coalesce(r.throttled, 0)
            FROM requeued q JOIN ingestions i ON i.seq = q.ingestion_seq
            LEFT JOIN results r ON r.ingestion_seq = q.ingestion_seq AND r.position = q.position
            WHERE q.not_before <= clock_timestamp()
            ORDER BY i.priority, i.created_at, q.ingestion_seq, q.position
            LIMIT $1
            """, connection, transaction))
        {
            requeued.Parameters.AddWithValue(maxIds);
            await using var reader = await requeued.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                candidates.Add(new Candidate(reader.GetInt64(0), reader.GetGuid(1), (Priority)reader.GetInt16(2), reader.GetFieldValue<DateTimeOffset>(3), reader.GetInt32(4), Requeued: true, reader.GetInt32(5), reader.GetInt32(6)));
            }
        }

        await using (var pending = new NpgsqlCommand("""
            SELECT seq, id, priority, created_at, started, total
            FROM ingestions
            WHERE started < total
            ORDER BY priority, created_at, seq
            LIMIT $1
            """, connection, transaction))
        {
            pending.Parameters.AddWithValue(maxIds);
            await using var reader = await pending.ExecuteReaderAsync(cancellationToken);
            var taken = 0;
            while (taken < maxIds && await reader.ReadAsync(cancellationToken))
            {
                var seq = reader.GetInt64(0);
                var ingestionId = reader.GetGuid(1);
                var priority = (Priority)reader.GetInt16(2);
                var createdAt = reader.GetFieldValue<DateTimeOffset>(3);
                var started = reader.GetInt32(4);
                var total = reader.GetInt32(5);
                for (var position = started; position < total && taken < maxIds; position++, taken++)
                {
                    candidates.Add(new Candidate(seq, ingestionId, priority, createdAt, position, Requeued: false));
                }
            }
        }

        if (candidates.Count == 0)
        {
            // Perhaps ids wait out a retry delay: say when the first is due.
            await using var due = new NpgsqlCommand("SELECT min(not_before) - clock_timestamp() FROM requeued", connection, transaction);
            var dueIn = await due.ExecuteScalarAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return dueIn is TimeSpan first ? WindowClaim.NothingDueFor(first) : WindowClaim.NothingWaits;
        }

        candidates.Sort(static (a, b) => a.OrderKey.CompareTo(b.OrderKey));
        if (candidates.Count > maxIds)
        {
            candidates.RemoveRange(maxIds, candidates.Count - maxIds);
        }

        var items = await ReadItemsAsync(connection, transaction, candidates, cancellationToken);

        long windowSeq;
        DateTimeOffset startedAt;
        await using (var insert = new NpgsqlCommand($"""
            INSERT INTO windows (started_at, state, id_count, owner, lease_until)
            VALUES ({NowCeilingMs}, 0, $1, $2, clock_timestamp() + $3)
            RETURNING seq, started_at
            """, connection, transaction))
        {
            insert.Parameters.AddWithValue(items.Length);
            insert.Parameters.AddWithValue(Owner);
            insert.Parameters.AddWithValue(_lease);
            await using var reader = await insert.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            windowSeq = reader.GetInt64(0);
            startedAt = reader.GetFieldValue<DateTimeOffset>(1);
        }

        var runs = Runs(items);
        await using (var insertItems = new NpgsqlCommand("""
            INSERT INTO window_items (window_seq, ingestion_seq, first_pos, count, ids)
            SELECT $1, r.ingestion_seq, r.first_pos, r.count, r.ids
            FROM unnest($2::bigint[], $3::integer[], $4::integer[], $5::bytea[]) AS r(ingestion_seq, first_pos, count, ids)
            """, connection, transaction))
        {
            insertItems.Parameters.AddWithValue(windowSeq);
            insertItems.Parameters.AddWithValue(runs.Select(r => r.IngestionSeq).ToArray());
            insertItems.Parameters.AddWithValue(runs.Select(r => r.FirstPosition).ToArray());
            insertItems.Parameters.AddWithValue(runs.Select(r => r.Ids.Length).ToArray());
            insertItems.Parameters.AddWithValue(runs.Select(r => IdBlob.Pack(r.Ids)).ToArray());
            await insertItems.ExecuteNonQueryAsync(cancellationToken);
        }

        var advanced = candidates.Where(c => !c.Requeued).GroupBy(c => c.IngestionSeq).ToList();
        if (advanced.Count > 0)
        {
            await using var advance = new NpgsqlCommand("""
                UPDATE ingestions i SET started = i.started + a.count
                FROM unnest($1::bigint[], $2::integer[]) AS a(seq, count)
                WHERE i.seq = a.seq
                """, connection, transaction);
            advance.Parameters.AddWithValue(advanced.Select(g => g.Key).ToArray());
            advance.Parameters.AddWithValue(advanced.Select(g => g.Count()).ToArray());
            await advance.ExecuteNonQueryAsync(cancellationToken);
        }

        var unqueued = candidates.Where(c => c.Requeued).ToList();
        if (unqueued.Count > 0)
        {
            await using var unqueue = new NpgsqlCommand("""
                DELETE FROM requeued q
                USING unnest($1::bigint[], $2::integer[]) AS u(seq, position)
                WHERE q.ingestion_seq = u.seq AND q.position = u.position
                """, connection, transaction);
            unqueue.Parameters.AddWithValue(unqueued.Select(c => c.IngestionSeq).ToArray());
            unqueue.Parameters.AddWithValue(unqueued.Select(c => c.Position).ToArray());
            await unqueue.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var record = new NpgsqlCommand("UPDATE limiter SET last_window_start = $1 WHERE id = 1", connection, transaction))
        {
            record.Parameters.AddWithValue(startedAt);
            await record.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        var claimed = new ClaimedWindow(windowSeq, startedAt, items);
        StartHeartbeat(windowSeq);
        return WindowClaim.Acquired(claimed);
    }

    /// <summary>Reads the ids of the chosen positions, each run of consecutive positions as one slice of its blob.</summary>
    private static async Task<WindowItem[]> ReadItemsAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, List<Candidate> candidates, CancellationToken cancellationToken)
    {
        var items = new WindowItem[candidates.Count];
        await using var slice = new NpgsqlCommand("SELECT substring(ids FROM $1 FOR $2) FROM ingestions WHERE seq = $3", connection, transaction);
        var from = slice.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer });
        var length = slice.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Integer });
        var seq = slice.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Bigint });
        var i = 0;
        while (i < candidates.Count)
        {
            var end = i + 1;
            while (end < candidates.Count && candidates[end].IngestionSeq == candidates[i].IngestionSeq && candidates[end].Position == candidates[end - 1].Position + 1)
            {
                end++;
            }

            from.Value = (candidates[i].Position * IdBlob.BytesPerId) + 1;
            length.Value = (end - i) * IdBlob.BytesPerId;
            seq.Value = candidates[i].IngestionSeq;
            var ids = IdBlob.Unpack((byte[])(await slice.ExecuteScalarAsync(cancellationToken))!);
            for (var k = i; k < end; k++)
            {
                var candidate = candidates[k];
                items[k] = new WindowItem(candidate.IngestionSeq, candidate.IngestionId, candidate.Priority, candidate.Position, ids[k - i], candidate.PriorAttempts, candidate.PriorThrottled);
            }

            i = end;
        }

        return items;
    }

    /// <summary>Groups a window's items into runs of consecutive positions of one ingestion, as the log stores them.</summary>
    private static List<(long IngestionSeq, int FirstPosition, int[] Ids)> Runs(IReadOnlyList<WindowItem> items)
    {
        var ordered = items.OrderBy(item => item.IngestionSeq).ThenBy(item => item.Position).ToList();
        var runs = new List<(long, int, int[])>();
        var start = 0;
        for (var i = 1; i <= ordered.Count; i++)
        {
            if (i == ordered.Count || ordered[i].IngestionSeq != ordered[start].IngestionSeq || ordered[i].Position != ordered[i - 1].Position + 1)
            {
                runs.Add((ordered[start].IngestionSeq, ordered[start].Position, [.. ordered[start..i].Select(item => item.Id)]));
                start = i;
            }
        }

        return runs;
    }

    /// <summary>
    /// Stores the outcomes. <see cref="WindowOutcome.FinishedAt"/> is ignored: the finish is stamped on the
    /// database's clock, like the start, so a window never appears to finish before it started; retry
    /// times and the pause are counted from that finish.
    /// </summary>
    public async Task CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(outcome.Fetches.Count, window.Items.Count);
        StopHeartbeat(window.Seq);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        DateTimeOffset finished;
        await using (var close = new NpgsqlCommand($"""
            UPDATE windows SET state = 1, finished_at = {NowCeilingMs}
            WHERE seq = $1 AND state = 0 AND owner = $2
            RETURNING finished_at
            """, connection, transaction))
        {
            close.Parameters.AddWithValue(window.Seq);
            close.Parameters.AddWithValue(Owner);
            // Counting its ids twice would corrupt progress: a window whose lease expired belongs to the queue again.
            finished = await close.ExecuteScalarAsync(cancellationToken) is DateTime value
                ? new DateTimeOffset(value, TimeSpan.Zero)
                : throw new InvalidOperationException($"Window {window.Seq} is no longer running (its lease expired and its ids were requeued); its results are not stored.");
        }

        if (outcome.Pause is { } pause)
        {
            // On the limiter row every claim of every instance reads, and in the log for the record.
            await using var paused = new NpgsqlCommand("""
                WITH w AS (UPDATE windows SET paused_until = date_trunc('milliseconds', $2::timestamptz + $3 + interval '999 microseconds') WHERE seq = $1 RETURNING paused_until)
                UPDATE limiter SET paused_until = greatest(limiter.paused_until, w.paused_until) FROM w WHERE limiter.id = 1
                """, connection, transaction);
            paused.Parameters.AddWithValue(window.Seq);
            paused.Parameters.AddWithValue(finished);
            paused.Parameters.AddWithValue(pause);
            await paused.ExecuteNonQueryAsync(cancellationToken);
        }

        var fetches = outcome.Fetches;
        DateTimeOffset? NextAttempt(FetchOutcome fetch) => fetch is { State: FetchState.Retrying, RetryAfter: { } delay } ? CeilingToMillisecond(finished + delay) : null;
        await using (var store = new NpgsqlCommand("""
            INSERT INTO results (ingestion_seq, position, id, state, http_status, body, truncated, attempts, throttled, error, next_attempt_at, fetched_at, window_seq)
            SELECT r.ingestion_seq, r.position, r.id, r.state, r.http_status, r.body, r.truncated, r.attempts, r.throttled, r.error, r.next_attempt_at, $12, $13
            FROM unnest($1::bigint[], $2::integer[], $3::integer[], $4::smallint[], $5::integer[], $6::text[], $7::boolean[], $8::integer[], $9::integer[], $10::text[], $11::timestamptz[])
                AS r(ingestion_seq, position, id, state, http_status, body, truncated, attempts, throttled, error, next_attempt_at)
            ON CONFLICT (ingestion_seq, position) DO UPDATE
            SET id = excluded.id, state = excluded.state, http_status = excluded.http_status, body = excluded.body, truncated = excluded.truncated,
                attempts = excluded.attempts, throttled = excluded.throttled, error = excluded.error, next_attempt_at = excluded.next_attempt_at,
                fetched_at = excluded.fetched_at, window_seq = excluded.window_seq
            """, connection, transaction))
        {
            store.Parameters.AddWithValue(window.Items.Select(item => item.IngestionSeq).ToArray());
            store.Parameters.AddWithValue(window.Items.Select(item => item.Position).ToArray());
            store.Parameters.AddWithValue(window.Items.Select(item => item.Id).ToArray());
            store.Parameters.AddWithValue(fetches.Select(fetch => (short)fetch.State).ToArray());
            store.Parameters.AddWithValue(fetches.Select(fetch => fetch.HttpStatus).ToArray());
            store.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, fetches.Select(fetch => fetch.Body).ToArray());
            store.Parameters.AddWithValue(fetches.Select(fetch => fetch.BodyTruncated).ToArray());
            store.Parameters.AddWithValue(fetches.Select(fetch => fetch.Attempts).ToArray());
            store.Parameters.AddWithValue(fetches.Select(fetch => fetch.Throttled).ToArray());
            store.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, fetches.Select(fetch => fetch.Error).ToArray());
            store.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, fetches.Select(NextAttempt).ToArray());
            store.Parameters.AddWithValue(finished);
            store.Parameters.AddWithValue(window.Seq);
            await store.ExecuteNonQueryAsync(cancellationToken);
        }

        var retries = Enumerable.Range(0, fetches.Count).Where(i => fetches[i].State == FetchState.Retrying).ToList();
        if (retries.Count > 0)
        {
            await using var requeue = new NpgsqlCommand("""
                INSERT INTO requeued (ingestion_seq, position, not_before)
                SELECT * FROM unnest($1::bigint[], $2::integer[], $3::timestamptz[])
                ON CONFLICT (ingestion_seq, position) DO UPDATE SET not_before = excluded.not_before
                """, connection, transaction);
            requeue.Parameters.AddWithValue(retries.Select(i => window.Items[i].IngestionSeq).ToArray());
            requeue.Parameters.AddWithValue(retries.Select(i => window.Items[i].Position).ToArray());
            requeue.Parameters.AddWithValue(retries.Select(i => NextAttempt(fetches[i]) ?? finished).ToArray());
            await requeue.ExecuteNonQueryAsync(cancellationToken);
        }

        var groups = Enumerable.Range(0, fetches.Count)
            .Where(i => fetches[i].State != FetchState.Retrying)
            .GroupBy(i => window.Items[i].IngestionSeq)
            .ToList();
        if (groups.Count > 0)
        {
            await using var progress = new NpgsqlCommand("""
                UPDATE ingestions i SET completed = i.completed + p.count, failed = i.failed + p.failed
                FROM unnest($1::bigint[], $2::integer[], $3::integer[]) AS p(seq, count, failed)
                WHERE i.seq = p.seq
                """, connection, transaction);
            progress.Parameters.AddWithValue(groups.Select(g => g.Key).ToArray());
            progress.Parameters.AddWithValue(groups.Select(g => g.Count()).ToArray());
            progress.Parameters.AddWithValue(groups.Select(g => g.Count(i => fetches[i].State == FetchState.Failed)).ToArray());
            await progress.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    private static DateTimeOffset CeilingToMillisecond(DateTimeOffset time)
    {
        var remainder = time.UtcTicks % TimeSpan.TicksPerMillisecond;
        return remainder == 0 ? time : time.AddTicks(TimeSpan.TicksPerMillisecond - remainder);
    }

    public async Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken)
    {
        StopHeartbeat(window.Seq);
        await using var command = _dataSource.CreateCommand(AbandonSql("seq = $1"));
        command.Parameters.AddWithValue(window.Seq);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>One statement, so one transaction: the window leaves the running state and its ids re-enter the queue together.</summary>
    private static string AbandonSql(string which) => $"""
        WITH abandoned AS (
            UPDATE windows SET state = 2 WHERE state = 0 AND {which} RETURNING seq
        )
        INSERT INTO requeued (ingestion_seq, position)
        SELECT wi.ingestion_seq, wi.first_pos + g.i
        FROM window_items wi
        JOIN abandoned a ON a.seq = wi.window_seq
        CROSS JOIN LATERAL generate_series(0, wi.count - 1) AS g(i)
        ON CONFLICT DO NOTHING
        """;

    public async Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);

        // Repeatable read: the counters, the spans and the requeued positions come from one snapshot.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
        long seq;
        Priority priority;
        DateTimeOffset createdAt;
        int batchSize, started, completed, failedCount;
        int[] ids;
        DateTimeOffset? pausedUntil;
        await using (var command = new NpgsqlCommand("""
            SELECT seq, priority, created_at, batch_size, started, completed, ids, failed, (SELECT paused_until FROM limiter WHERE id = 1)
            FROM ingestions WHERE id = $1
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

            await using (var command = new NpgsqlCommand("SELECT position FROM requeued WHERE ingestion_seq = $1 ORDER BY position", connection, transaction))
            {
                command.Parameters.AddWithValue(seq);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    requeued.Add(reader.GetInt32(0));
                }
            }
        }

        long idsAhead = 0;
        if (started < ids.Length)
        {
            await using var command = new NpgsqlCommand("""
                SELECT (SELECT coalesce(sum(p.total - p.started), 0) FROM ingestions p
                        WHERE p.started < p.total AND (p.priority, p.created_at, p.seq) < (i.priority, i.created_at, i.seq))
                     + (SELECT count(*) FROM requeued q JOIN ingestions r ON r.seq = q.ingestion_seq
                        WHERE (r.priority, r.created_at, r.seq) <= (i.priority, i.created_at, i.seq))
                FROM ingestions i WHERE i.seq = $1
                """, connection, transaction);
            command.Parameters.AddWithValue(seq);
            idsAhead = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        }

        List<int>? failed = null;
        if (failedCount > 0)
        {
            await using var command = new NpgsqlCommand("SELECT position FROM results WHERE ingestion_seq = $1 AND state = 2 ORDER BY position", connection, transaction);
            command.Parameters.AddWithValue(seq);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            failed = [];
            while (await reader.ReadAsync(cancellationToken))
            {
                failed.Add(reader.GetInt32(0));
            }
        }

        await transaction.CommitAsync(cancellationToken);
        return new IngestionSnapshot(ingestionId, priority, createdAt, batchSize, ids, started, completed, spans, requeued, idsAhead, failed, pausedUntil);
    }

    public async Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
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
        await using var command = _dataSource.CreateCommand("SELECT paused_until FROM limiter WHERE id = 1");
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime until ? new DateTimeOffset(until, TimeSpan.Zero) : null;
    }

    public async Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);

        // The row at position -1 says the ingestion exists, so an unknown id and a page past the end differ.
        await using var command = _dataSource.CreateCommand("""
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
        return await IdResultRows.ReadAsync(reader, static (row, ordinal) => row.GetFieldValue<DateTimeOffset>(ordinal), cancellationToken);
    }

    public async Task ProbeAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT 1");
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = _dataSource.CreateCommand("""
            SELECT w.seq, w.started_at, w.finished_at, w.state, i.id, i.priority, wi.first_pos, wi.ids, w.paused_until
            FROM (SELECT * FROM windows ORDER BY seq DESC LIMIT $1) w
            JOIN window_items wi ON wi.window_seq = w.seq
            JOIN ingestions i ON i.seq = wi.ingestion_seq
            ORDER BY w.seq DESC, i.priority, i.created_at, wi.ingestion_seq, wi.first_pos
            """);
        command.Parameters.AddWithValue(limit);
        var windows = new List<WindowRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            WindowLogRows.Add(
                windows,
                reader.GetInt64(0),
                reader.GetFieldValue<DateTimeOffset>(1),
                reader.IsDBNull(2) ? null : reader.GetFieldValue<DateTimeOffset>(2),
                (WindowState)reader.GetInt16(3),
                reader.IsDBNull(8) ? null : reader.GetFieldValue<DateTimeOffset>(8),
                new WindowRecordItem(reader.GetGuid(4), (Priority)reader.GetInt16(5), reader.GetInt32(6), IdBlob.Unpack(reader.GetFieldValue<byte[]>(7))));
        }

        return windows;
    }

    public async Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = _dataSource.CreateCommand("""
            SELECT id, priority, created_at, batch_size, total, started, completed, failed
            FROM ingestions ORDER BY seq DESC LIMIT $1
            """);
        command.Parameters.AddWithValue(limit);
        var ingestions = new List<IngestionSummary>(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ingestions.Add(new IngestionSummary(
                reader.GetGuid(0),
                (Priority)reader.GetInt16(1),
                reader.GetFieldValue<DateTimeOffset>(2),
                reader.GetInt32(3),
                reader.GetInt32(4),
                reader.GetInt32(5),
                reader.GetInt32(6),
                reader.GetInt32(7)));
        }

        return ingestions;
    }

    /// <summary>
    /// Renews the lease of a window this instance runs every third of the lease, so that two renewals
    /// in a row may fail (a slow or briefly unreachable database) before another instance takes it over.
    /// </summary>
    private void StartHeartbeat(long windowSeq)
    {
        var stop = new CancellationTokenSource();
        _heartbeats[windowSeq] = stop;
        _ = Task.Run(() => RenewLeaseAsync(windowSeq, stop.Token), CancellationToken.None);
    }

    private void StopHeartbeat(long windowSeq)
    {
        // Not disposed: the renewal loop may still be looking at its token, and a source without a
        // timer holds nothing that needs it.
        if (_heartbeats.TryRemove(windowSeq, out var stop))
        {
            stop.Cancel();
        }
    }

    /// <summary>Stops renewing every lease, as a process that dies does; the windows stay running until their leases expire.</summary>
    internal void StopRenewingLeases()
    {
        foreach (var windowSeq in _heartbeats.Keys)
        {
            StopHeartbeat(windowSeq);
        }
    }

    private async Task RenewLeaseAsync(long windowSeq, CancellationToken cancellationToken)
    {
        // Real time on purpose: the lease is measured by the database's clock, not by any test's fake one.
        using var timer = new PeriodicTimer(_lease / 3);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    await using var renew = _dataSource.CreateCommand("""
                        UPDATE windows SET lease_until = clock_timestamp() + $1
                        WHERE seq = $2 AND state = 0 AND owner = $3
                        """);
                    renew.Parameters.AddWithValue(_lease);
                    renew.Parameters.AddWithValue(windowSeq);
                    renew.Parameters.AddWithValue(Owner);
                    if (await renew.ExecuteNonQueryAsync(cancellationToken) == 0)
                    {
                        LogLeaseLost(_logger, windowSeq);
                        return;
                    }
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    LogLeaseRenewalFailed(_logger, exception, windowSeq);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The window completed or was abandoned.
        }
    }

    /// <summary>
    /// On a graceful stop, hands this instance's running windows back at once instead of after their
    /// lease: a rolling restart then costs no failover wait. A crash skips this, and the lease covers it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        StopRenewingLeases();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await using var command = _dataSource.CreateCommand(AbandonSql("owner = $1"));
            command.Parameters.AddWithValue(Owner);
            await command.ExecuteNonQueryAsync(timeout.Token);
        }
        catch (Exception exception) when (exception is NpgsqlException or OperationCanceledException or ObjectDisposedException)
        {
            LogHandBackFailed(_logger, exception);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message = "Window {WindowSeq} of {Owner} outlived its lease (the instance died or lost the database); its {IdCount} ids are back in the queue and will be fetched again")]
    private static partial void LogExpiredWindow(ILogger logger, long windowSeq, string owner, int idCount);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Window {WindowSeq} is no longer this instance's (its lease expired); its results will not be stored")]
    private static partial void LogLeaseLost(ILogger logger, long windowSeq);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Renewing the lease of window {WindowSeq} failed; trying again at the next heartbeat")]
    private static partial void LogLeaseRenewalFailed(ILogger logger, Exception exception, long windowSeq);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Could not hand this instance's running windows back on shutdown; other instances take them over when their leases expire")]
    private static partial void LogHandBackFailed(ILogger logger, Exception exception);

    private readonly record struct Candidate(long IngestionSeq, Guid IngestionId, Priority Priority, DateTimeOffset CreatedAt, int Position, bool Requeued, int PriorAttempts = 0, int PriorThrottled = 0)
    {
        public (int, DateTimeOffset, long, int) OrderKey => ((int)Priority, CreatedAt, IngestionSeq, Position);
    }
}
