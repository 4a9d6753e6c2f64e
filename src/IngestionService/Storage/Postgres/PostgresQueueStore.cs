using System.Globalization;
using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Scheduling;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The shared store's write path: one PostgreSQL database behind any number of instances, which then
/// behave as one service with one queue and one rate limit. Every time it stamps or compares comes from
/// the database's clock (<c>clock_timestamp()</c>), so hosts with skewed clocks still agree; claims are
/// serialised by the <c>limiter</c> row lock (see <c>PostgresQueueStore.Claim.cs</c>), and the windows
/// this instance runs are held by leases (<see cref="PostgresLeases"/>).
/// </summary>
public sealed partial class PostgresQueueStore : IQueueStore, IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger<PostgresQueueStore> _logger;
    private readonly TimeSpan _lease;
    private readonly PostgresLeases _leases;
    private readonly PostgresGroupCommit _groupCommit;

    public PostgresQueueStore(NpgsqlDataSource dataSource, IOptions<IngestionOptions> options, ILogger<PostgresQueueStore> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _dataSource = dataSource;
        _logger = logger;
        _lease = options.Value.Lease;
        PollInterval = options.Value.PollInterval;
        Owner = string.Create(CultureInfo.InvariantCulture, $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():n}");
        _leases = new PostgresLeases(dataSource, Owner, _lease, logger);
        _groupCommit = new PostgresGroupCommit(dataSource);
    }

    /// <summary>Names this instance in the <c>owner</c> column of the windows it runs: host, process id, and a nonce.</summary>
    public string Owner { get; }

    /// <summary>Other instances add work and finish windows: an idle dispatcher must look again on its own.</summary>
    public TimeSpan? PollInterval { get; }

    public static NpgsqlDataSource CreateDataSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.ApplicationName ??= "ingestion-service";

        // Every statement here is one of a few dozen texts: prepared on each session after a few uses, the
        // server parses and plans each once per session instead of once per call. A connection string that
        // says how many to keep (Max Auto Prepare, 0 for none) decides for itself.
        if (!new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys.Cast<string>()
                .Any(key => key.Replace(" ", "", StringComparison.Ordinal).Equals("MaxAutoPrepare", StringComparison.OrdinalIgnoreCase)))
        {
            builder.ConnectionStringBuilder.MaxAutoPrepare = 64;
        }

        return builder.Build();
    }

    /// <summary>No recovery here, unlike SQLite: a running window may belong to a live instance. Expired leases are taken back by the claims themselves.</summary>
    public Task InitializeAsync(CancellationToken cancellationToken) => PostgresSchema.ApplyAsync(_dataSource, cancellationToken);

    public async Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ingestion);

        if (ingestion.Idempotency is not { } key)
        {
            return await _groupCommit.EnqueueAsync(ingestion);
        }

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

        await using (var sweep = new NpgsqlCommand($"""
            DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE expires_at <= clock_timestamp() LIMIT {IdempotencyKey.SweptPerNewKey} FOR UPDATE SKIP LOCKED)
            """, connection, transaction))
        {
            await sweep.ExecuteNonQueryAsync(cancellationToken);
        }

        // The key's row lock is taken before the totals' lock here, and a group commit takes no key: no cycle.
        await using (var insert = new NpgsqlCommand(PostgresGroupCommit.InsertSql, connection, transaction))
        {
            PostgresGroupCommit.Bind(insert, [ingestion]);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await NotifyAsync(connection, transaction, cancellationToken);

        await transaction.CommitAsync(cancellationToken);
        return new EnqueueResult(ingestion.Id, EnqueueOutcome.Created);
    }

    public async Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT request_hash, ingestion_id FROM idempotency_keys WHERE key = $1 AND expires_at > clock_timestamp()");
        command.Parameters.AddWithValue(key);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Earlier(reader, requestHash) : null;
    }

    private static EnqueueResult Earlier(NpgsqlDataReader reader, byte[] requestHash) =>
        EnqueueResult.Earlier(reader.GetGuid(1), reader.GetFieldValue<byte[]>(0), requestHash);

    /// <summary>
    /// Stores the outcomes. The finish is stamped on the database's clock, like the start, so a window
    /// never appears to finish before it started; retry times and the pause are counted from it.
    /// </summary>
    public async Task<DateTimeOffset> CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        ArgumentNullException.ThrowIfNull(outcome);
        ArgumentOutOfRangeException.ThrowIfNotEqual(outcome.Fetches.Count, window.Items.Count);
        _leases.Stop(window.Seq);
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

        var tally = WindowTally.Of(window, outcome, finished);
        if (tally.PausedUntil is { } pausedUntil)
        {
            // On the limiter row every claim of every instance reads, and in the log for the record.
            await using var paused = new NpgsqlCommand("""
                WITH w AS (UPDATE windows SET paused_until = $2 WHERE seq = $1 RETURNING paused_until)
                UPDATE limiter SET paused_until = greatest(limiter.paused_until, w.paused_until) FROM w WHERE limiter.id = 1
                """, connection, transaction);
            paused.Parameters.AddWithValue(window.Seq);
            paused.Parameters.AddWithValue(pausedUntil);
            await paused.ExecuteNonQueryAsync(cancellationToken);
        }

        var fetches = outcome.Fetches;
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
            store.Parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, fetches.Select(fetch => WindowTally.NextAttemptAt(fetch, finished)).ToArray());
            store.Parameters.AddWithValue(finished);
            store.Parameters.AddWithValue(window.Seq);
            await store.ExecuteNonQueryAsync(cancellationToken);
        }

        if (tally.Retries.Count > 0)
        {
            await using var requeue = new NpgsqlCommand("""
                INSERT INTO requeued (ingestion_seq, position, not_before)
                SELECT * FROM unnest($1::bigint[], $2::integer[], $3::timestamptz[])
                ON CONFLICT (ingestion_seq, position) DO UPDATE SET not_before = excluded.not_before
                """, connection, transaction);
            requeue.Parameters.AddWithValue(tally.Retries.Select(i => window.Items[i].IngestionSeq).ToArray());
            requeue.Parameters.AddWithValue(tally.Retries.Select(i => window.Items[i].Position).ToArray());
            requeue.Parameters.AddWithValue(tally.Retries.Select(i => WindowTally.DueAt(fetches[i], finished)).ToArray());
            await requeue.ExecuteNonQueryAsync(cancellationToken);
        }

        await using (var mark = new NpgsqlCommand("""
            UPDATE window_items wi SET marks = m.marks
            FROM unnest($1::bigint[], $2::integer[], $3::bytea[]) AS m(ingestion_seq, first_pos, marks)
            WHERE wi.window_seq = $4 AND wi.ingestion_seq = m.ingestion_seq AND wi.first_pos = m.first_pos
            """, connection, transaction))
        {
            mark.Parameters.AddWithValue(tally.Marks.Select(run => run.IngestionSeq).ToArray());
            mark.Parameters.AddWithValue(tally.Marks.Select(run => run.FirstPosition).ToArray());
            mark.Parameters.AddWithValue(tally.Marks.Select(run => run.Marks).ToArray());
            mark.Parameters.AddWithValue(window.Seq);
            await mark.ExecuteNonQueryAsync(cancellationToken);
        }

        if (tally.Progress.Count > 0)
        {
            await using var progress = new NpgsqlCommand("""
                UPDATE ingestions i SET completed = i.completed + p.count, failed = i.failed + p.failed,
                    finished_at = CASE WHEN i.completed + p.count >= coalesce(i.cancelled_from, i.total) THEN $4 ELSE i.finished_at END
                FROM unnest($1::bigint[], $2::integer[], $3::integer[]) AS p(seq, count, failed)
                WHERE i.seq = p.seq
                """, connection, transaction);
            progress.Parameters.AddWithValue(tally.Progress.Select(p => p.IngestionSeq).ToArray());
            progress.Parameters.AddWithValue(tally.Progress.Select(p => p.Completed).ToArray());
            progress.Parameters.AddWithValue(tally.Progress.Select(p => p.Failed).ToArray());
            progress.Parameters.AddWithValue(finished);
            await progress.ExecuteNonQueryAsync(cancellationToken);
        }

        // The next window may start once this one is over: instances idle on another host hear it.
        await NotifyAsync(connection, transaction, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return finished;
    }

    public async Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(window);
        _leases.Stop(window.Seq);
        await using var command = _dataSource.CreateCommand(AbandonSql("seq = $1"));
        command.Parameters.AddWithValue(window.Seq);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// One statement, so one transaction: the running windows <paramref name="which"/> picks leave the
    /// running state and their ids re-enter the queue together; it answers the windows it abandoned.
    /// </summary>
    private static string AbandonSql(string which) => $"""
        WITH abandoned AS (
            UPDATE windows SET state = 2 WHERE state = 0 AND {which} RETURNING seq, owner, id_count
        ), requeue AS (
            INSERT INTO requeued (ingestion_seq, position)
            SELECT wi.ingestion_seq, wi.first_pos + g.i
            FROM window_items wi
            JOIN abandoned a ON a.seq = wi.window_seq
            CROSS JOIN LATERAL generate_series(0, wi.count - 1) AS g(i)
            ON CONFLICT DO NOTHING
        )
        SELECT seq, owner, id_count, {PostgresWakeUps.Notify} FROM abandoned
        """;

    /// <summary>Tells the listening instances (<see cref="PostgresWakeUps"/>) once the transaction commits.</summary>
    private static async Task NotifyAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken cancellationToken)
    {
        await using var notify = new NpgsqlCommand(PostgresWakeUps.NotifySql, connection, transaction);
        await notify.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Stops renewing every lease, as a process that dies does; the windows stay running until their leases expire.</summary>
    internal void StopRenewingLeases() => _leases.StopAll();

    /// <summary>
    /// On a graceful stop, hands this instance's running windows back at once instead of after their
    /// lease: a rolling restart then costs no failover wait. A crash skips this, and the lease covers it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _groupCommit.DisposeAsync();
        _leases.StopAll();
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

    [LoggerMessage(EventId = LogEvents.HandBackOnShutdownFailed, Level = LogLevel.Warning, Message = "Could not hand this instance's running windows back on shutdown; other instances take them over when their leases expire")]
    private static partial void LogHandBackFailed(ILogger logger, Exception exception);
}
