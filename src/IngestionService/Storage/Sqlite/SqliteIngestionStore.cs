using System.Collections.Concurrent;
using System.Threading.Channels;
using IngestionService.Ingest;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using SQLitePCL;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode. All writes go through one connection under one
/// lock (SQLite has one writer anyway, and this way no write ever waits on SQLITE_BUSY); reads use
/// pooled connections and see a consistent snapshot without blocking the writer.
/// New ingestions are group-committed: requests that arrive while a commit is running share the next
/// one, and each is acknowledged only after the commit that holds it.
/// </summary>
public sealed partial class SqliteIngestionStore : IIngestionStore, IAsyncDisposable
{
    private const int MaxIngestionsPerCommit = 256;
    private const int MaxIdleReaders = 16;
    internal const int NewFilePageSize = 1024;

    private readonly string _connectionString;
    private readonly ILogger<SqliteIngestionStore> _logger;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    // Synchronous continuations only release the commit thread's blocking wait (it never awaits the
    // channel), so a request's write wakes that thread directly instead of through the thread pool's queue.
    private readonly Channel<PendingEnqueue> _enqueues = Channel.CreateUnbounded<PendingEnqueue>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });
    private readonly ConcurrentBag<ReaderSession> _readers = [];
    private readonly SqliteSynchronous _synchronous;
    private SqliteConnection? _writer;
    private RawStatement? _begin;
    private RawStatement? _commit;
    private RawStatement? _rollback;
    private RawStatement? _insertIngestion;
    private readonly QueueCounters _counters = new();
    private readonly SnapshotMemo _memo = new();
    private long _lastCreatedAt;
    private long _pausedUntil = long.MinValue;
    private volatile bool _disposed;
    private readonly CancellationTokenSource _stopping = new();
    private Task? _groupCommit;
    private Task? _checkpoints;
    private string? _walPath;
    private long _framesAtRestart = -1;
    private long _pageSize = NewFilePageSize;

    public SqliteIngestionStore(IOptions<StorageOptions> options, ILogger<SqliteIngestionStore> logger)
    {
        var builder = new SqliteConnectionStringBuilder(options.Value.ConnectionString)
        {
            Pooling = true,
        };
        _connectionString = builder.ConnectionString;
        _synchronous = options.Value.Synchronous;
        _logger = logger;

        // A fresh data directory is a normal way to start; a missing folder should not be an error.
        if (builder.Mode != SqliteOpenMode.Memory && !string.IsNullOrEmpty(builder.DataSource) && builder.DataSource != ":memory:")
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(builder.DataSource));
            if (!string.IsNullOrEmpty(directory))
            {
                Directory.CreateDirectory(directory);
            }
        }
    }

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        _writer = new SqliteConnection(_connectionString);
        await _writer.OpenAsync(cancellationToken);
        // A new file gets 1 KiB pages (an existing one keeps its own). Every commit rewrites whole pages in the
        // log (the last page of each of the three b-trees an ingestion goes into, and a few more), and the
        // rows of a group commit are small, so smaller pages cut the bytes written, flushed and checkpointed
        // per POST by about half: side by side, 5-id POST p99 3.6 vs 4.5 ms at equal throughput, with
        // status reads of 3 000 ids no slower. It must come before the switch to WAL to take effect.
        await ExecuteAsync(_writer, null, $"""
            PRAGMA page_size = {NewFilePageSize};
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = {(_synchronous == SqliteSynchronous.Full ? "FULL" : "NORMAL")};
            PRAGMA wal_autocheckpoint = 0;
            PRAGMA journal_size_limit = {WalRestartBytes};
            """, cancellationToken);
        await SqliteSchema.ApplyAsync(_writer, cancellationToken);
        await using (var pageSize = _writer.CreateCommand())
        {
            pageSize.CommandText = "PRAGMA page_size";
            _pageSize = (long)(await pageSize.ExecuteScalarAsync(cancellationToken))!;
        }

        // SQLite's own name for the file (a URI or |DataDirectory| resolved); empty when in memory.
        _walPath = string.IsNullOrEmpty(_writer.DataSource) ? null : _writer.DataSource + "-wal";

        // Prepared once: preparing costs more than the insert itself.
        _begin = new RawStatement(_writer, "BEGIN IMMEDIATE");
        _commit = new RawStatement(_writer, "COMMIT");
        _rollback = new RawStatement(_writer, "ROLLBACK");
        _insertIngestion = new RawStatement(_writer, """
            INSERT INTO ingestions (id, priority, created_at, batch_size, total, ids, ids_before)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
            """);

        // This store serves one process, so a window still marked running was left by a process that
        // died mid-fetch: its ids go back to the queue and are fetched again (at-least-once).
        foreach (var window in await ReadRunningWindowsAsync(cancellationToken))
        {
            await AbandonWindowAsync(window, cancellationToken);
            LogRecoveredWindow(_logger, window.Seq, window.Items.Count);
        }

        await LoadCountersAsync(cancellationToken);
        _groupCommit = Task.Factory.StartNew(GroupCommitLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        _checkpoints = Task.Run(CheckpointLoopAsync, CancellationToken.None);
    }

    /// <summary>One pass at start; from then on the writer keeps the totals as it commits.</summary>
    private async Task LoadCountersAsync(CancellationToken cancellationToken)
    {
        await using var command = Writer.CreateCommand();
        command.CommandText = """
            SELECT 0, priority, sum(total), sum(started), max(created_at) FROM ingestions GROUP BY priority
            UNION ALL
            SELECT 1, i.priority, count(*), 0, 0 FROM requeued q CROSS JOIN ingestions i ON i.seq = q.ingestion_seq GROUP BY i.priority
            UNION ALL
            SELECT 2, 0, 0, 0, paused_until FROM (SELECT paused_until FROM windows ORDER BY seq DESC LIMIT 1) WHERE paused_until IS NOT NULL
            """;
        var totals = new long[3, 3];
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var priority = reader.GetInt32(1);
                if (reader.GetInt32(0) == 2)
                {
                    _pausedUntil = reader.GetInt64(4);
                }
                else if (reader.GetInt32(0) == 0)
                {
                    totals[priority, 0] = reader.GetInt64(2);
                    totals[priority, 1] = reader.GetInt64(3);
                    _lastCreatedAt = Math.Max(_lastCreatedAt, reader.GetInt64(4));
                }
                else
                {
                    totals[priority, 2] = reader.GetInt64(2);
                }
            }
        }

        foreach (var priority in new[] { Priority.High, Priority.Medium, Priority.Low })
        {
            _counters.Set(priority, totals[(int)priority, 0], totals[(int)priority, 1], totals[(int)priority, 2]);
        }
    }

    /// <summary>
    /// Copies the write-ahead log into the database once a second from a connection of its own. SQLite
    /// would otherwise do it inside whichever commit crosses the log's size limit, and that commit (with
    /// every request waiting on it) would pay for copying and flushing megabytes. A passive checkpoint
    /// never blocks the writer or the readers.
    /// A passive checkpoint alone never lets the log start over while commits keep coming: frames
    /// appended while it copies are always left, and SQLite reuses the log from its start only once
    /// every frame is in the database. Under a steady stream of requests the file grew without end
    /// (2.4 GB in a minute of POSTs, with commits slowing as it grew). So once the log passes
    /// <see cref="WalRestartBytes"/>, a second checkpoint runs under the write lock: it copies only what
    /// arrived during the first (the same few pages, mostly), waits out readers of older frames, and
    /// the next commit then starts the log over, truncated to that size (<c>journal_size_limit</c>).
    /// </summary>
    private async Task CheckpointLoopAsync()
    {
        using var timer = new PeriodicTimer(CheckpointInterval);
        try
        {
            await using var connection = await OpenCheckpointerAsync(_stopping.Token);
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                try
                {
                    await CheckpointAsync(connection, _stopping.Token);
                }
                catch (Exception exception) when (!_stopping.IsCancellationRequested)
                {
                    LogCheckpointFailed(_logger, exception);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    internal async Task<SqliteConnection> OpenCheckpointerAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);

            // A reader of older frames holds the restart back; it is tried again a second later rather
            // than keeping every commit waiting for long. The size limit is needed here as well as on the
            // writer: without it the restarted log kept its full size (found by the test).
            await ExecuteAsync(connection, null, $"PRAGMA busy_timeout = 20; PRAGMA journal_size_limit = {WalRestartBytes}", cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>One pass of the checkpoint loop.</summary>
    internal async Task CheckpointAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        var (_, frames, copied) = await CheckpointAsync(connection, "PASSIVE", cancellationToken);
        if (WalBytes <= WalRestartBytes || (frames == copied && frames == _framesAtRestart))
        {
            return; // small, or restarted with nothing written since: the next commit starts it over
        }

        // Catch up without the lock first (each pass copies what arrived during the one before), so the
        // pass under it has at most a few pages left to copy.
        for (var pass = 0; pass < 8 && frames - copied > RestartFramesLeft; pass++)
        {
            (_, frames, copied) = await CheckpointAsync(connection, "PASSIVE", cancellationToken);
        }

        // A passive checkpoint flushes only when it copied the whole log, so the locked pass would flush
        // every page copied since the last restart (130-160 ms of held commits with 1 000-id requests);
        // flushed here, it has the last few left.
        FlushOpenFiles(_walPath, _writer?.DataSource);
        await CheckpointAsync(connection, "PASSIVE", cancellationToken);

        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var restart = await CheckpointAsync(connection, "RESTART", cancellationToken);
            if (restart.Busy)
            {
                LogRestartPostponed(_logger, WalBytes);
            }
            else
            {
                _framesAtRestart = restart.Frames;
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// fsync, once per file, on a descriptor SQLite has open on it (the database or its log), found in one
    /// pass over <c>/proc/self/fd</c>; Linux only, elsewhere the locked pass flushes them. A descriptor of
    /// our own would not do for the database: closing it would drop every POSIX lock this process holds on
    /// the file, SQLite's included. One closed and reused in between only means another file is flushed.
    /// </summary>
    private static void FlushOpenFiles(params string?[] paths)
    {
        var pending = new HashSet<string>(paths.Where(path => !string.IsNullOrEmpty(path))!, StringComparer.Ordinal);
        if (pending.Count == 0 || !OperatingSystem.IsLinux())
        {
            return;
        }

        foreach (var descriptor in new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos())
        {
            if (descriptor.LinkTarget is { } target && pending.Remove(target)
                && int.TryParse(descriptor.Name, System.Globalization.CultureInfo.InvariantCulture, out var fd))
            {
                _ = NativeMethods.Fsync(fd);
                if (pending.Count == 0)
                {
                    return;
                }
            }
        }
    }

    private static class NativeMethods
    {
        [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
        [System.Runtime.InteropServices.DefaultDllImportSearchPaths(System.Runtime.InteropServices.DllImportSearchPath.SafeDirectories)]
        public static extern int Fsync(int fd);
    }

    /// <summary>Frames (pages) the locked pass may be left to copy: about a megabyte, whatever the file's page size.</summary>
    private long RestartFramesLeft => (1024 * 1024) / _pageSize;

    /// <summary>A checkpoint (PASSIVE or RESTART): whether a reader held it back, the frames in the log, and how many are now in the database.</summary>
    private static async Task<(bool Busy, long Frames, long Copied)> CheckpointAsync(SqliteConnection connection, string mode, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA wal_checkpoint({mode})";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (reader.GetInt64(0) != 0, reader.GetInt64(1), reader.GetInt64(2)) : (false, 0, 0);
    }

    /// <summary>How often the background checkpoint runs (tests lengthen it to drive passes themselves).</summary>
    internal TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The size the write-ahead log is brought back to once it grows past it. It also bounds the work of a
    /// start after a crash, which reads the whole log back: with 256 MB of 1 KiB frames that took 1.2-1.8 s
    /// of the 2 s a restart may take.
    /// </summary>
    internal long WalRestartBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>The write-ahead log file's size now (0 for an in-memory database).</summary>
    internal long WalBytes => _walPath is not null && new FileInfo(_walPath) is { Exists: true } wal ? wal.Length : 0;

    public Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken)
    {
        var pending = new PendingEnqueue(ingestion);
        if (!_enqueues.Writer.TryWrite(pending))
        {
            throw new InvalidOperationException("The store is shutting down and takes no new ingestions.");
        }

        // Not cancelled with the request: once handed to the commit loop the ingestion may be committed,
        // and the caller must learn the outcome rather than guess.
        return pending.Task;
    }

    /// <summary>
    /// The commit loop, on a thread of its own: it blocks while nothing waits, and a new request wakes it
    /// at once rather than queueing it behind every other work item on the thread pool, which on two busy
    /// cores put that queue's delay into every commit and so into every POST.
    /// </summary>
    private void GroupCommitLoop()
    {
        var reader = _enqueues.Reader;
        var batch = new List<PendingEnqueue>(MaxIngestionsPerCommit);
        while (reader.TryPeek(out _) || reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (batch.Count < MaxIngestionsPerCommit && reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }

            try
            {
                var results = CommitIngestions(batch);
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].TrySetResult(results[i]);
                }
            }
            catch (Exception exception)
            {
                foreach (var pending in batch)
                {
                    pending.TrySetException(exception);
                }
            }

            batch.Clear();
        }
    }

    /// <summary>
    /// One group commit, run on the commit thread from start to end: the inserts go through statements
    /// prepared once (<see cref="RawStatement"/>), so a commit allocates little more than its answers.
    /// </summary>
    private EnqueueResult[] CommitIngestions(List<PendingEnqueue> batch)
    {
        var results = new EnqueueResult[batch.Count];
        var committing = false;
        _writeLock.Wait();
        try
        {
            var writer = Writer;
            var insert = _insertIngestion!;
            _begin!.Execute();
            try
            {
                var added = new long[3];
                var lastCreatedAt = _lastCreatedAt;
                Span<byte> id = stackalloc byte[16];
                for (var index = 0; index < batch.Count; index++)
                {
                    var ingestion = batch[index].Ingestion;
                    var priority = (int)ingestion.Priority;
                    if (ingestion.Idempotency is { } key)
                    {
                        // Checked in the commit that would store the ingestion, so two requests with one key
                        // cannot both create one, whether they share this commit or not.
                        results[index] = ClaimIdempotencyKey(writer, ingestion, key);
                        if (results[index].Outcome != EnqueueOutcome.Created)
                        {
                            continue;
                        }
                    }
                    else
                    {
                        results[index] = new EnqueueResult(ingestion.Id, EnqueueOutcome.Created);
                    }

                    // Created times never go backwards in arrival order, so (created time, arrival) and arrival
                    // agree, and the running totals below follow the global order exactly. Requests racing
                    // within a millisecond or two are the only ones this can move.
                    lastCreatedAt = Math.Max(lastCreatedAt, ingestion.CreatedAt.ToUnixTimeMilliseconds());
                    WriteId(ingestion.Id, id);
                    insert.Bind(1, id);
                    insert.Bind(2, priority);
                    insert.Bind(3, lastCreatedAt);
                    insert.Bind(4, ingestion.BatchSize);
                    insert.Bind(5, ingestion.Ids.Length);
                    insert.Bind(6, IdBlob.AsBytes(ingestion.Ids));
                    insert.Bind(7, _counters.Enqueued(ingestion.Priority) + added[priority]);
                    insert.Execute();
                    added[priority] += ingestion.Ids.Length;
                }

                committing = true;
                _memo.Creating();
                _commit!.Execute();
                _lastCreatedAt = lastCreatedAt;
                for (var priority = 0; priority < added.Length; priority++)
                {
                    _counters.AddEnqueued((Priority)priority, added[priority]);
                }
            }
            catch when (raw.sqlite3_get_autocommit(writer.Handle) == 0)
            {
                // Still inside the transaction (a failed insert, or a COMMIT that could not finish): undone
                // whole, so no request of the batch is left half-stored.
                _rollback!.Execute();
                throw;
            }
        }
        finally
        {
            if (committing)
            {
                _memo.Created();
            }

            _writeLock.Release();
        }

        return results;
    }

    public async Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, DateTimeOffset now, CancellationToken cancellationToken)
    {
        using var session = await RentReaderAsync(cancellationToken);
        var command = session.Command("SELECT request_hash, ingestion_id FROM idempotency_keys WHERE key = $key AND expires_at > $now", "$key", "$now");
        command.Parameters[0].Value = key;
        command.Parameters[1].Value = now.ToUnixTimeMilliseconds();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? Earlier(reader, requestHash) : null;
    }

    private static EnqueueResult Earlier(SqliteDataReader reader, byte[] requestHash) =>
        new(ReadGuid(reader, 1), ((byte[])reader.GetValue(0)).AsSpan().SequenceEqual(requestHash) ? EnqueueOutcome.Replayed : EnqueueOutcome.KeyConflict);

    /// <summary>
    /// Stores the key for this ingestion unless a live one exists: then it answers that key's ingestion
    /// (same request) or a conflict (another request). An expired key is forgotten and taken anew, and a
    /// few expired keys are swept out with every new one.
    /// </summary>
    private static EnqueueResult ClaimIdempotencyKey(SqliteConnection writer, NewIngestion ingestion, IdempotencyKey key)
    {
        var now = ingestion.CreatedAt.ToUnixTimeMilliseconds();
        using (var find = writer.CreateCommand())
        {
            find.CommandText = "SELECT request_hash, ingestion_id FROM idempotency_keys WHERE key = $key AND expires_at > $now";
            find.Parameters.AddWithValue("$key", key.Key);
            find.Parameters.AddWithValue("$now", now);
            using var reader = find.ExecuteReader();
            if (reader.Read())
            {
                return Earlier(reader, key.RequestHash);
            }
        }

        using var store = writer.CreateCommand();
        store.CommandText = """
            DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE expires_at <= $now LIMIT 16);
            INSERT OR REPLACE INTO idempotency_keys (key, request_hash, ingestion_id, expires_at) VALUES ($key, $hash, $ingestion_id, $expires_at);
            """;
        store.Parameters.AddWithValue("$now", now);
        store.Parameters.AddWithValue("$key", key.Key);
        store.Parameters.AddWithValue("$hash", key.RequestHash);
        store.Parameters.AddWithValue("$ingestion_id", IdBytes(ingestion.Id));
        store.Parameters.AddWithValue("$expires_at", key.ExpiresAt.ToUnixTimeMilliseconds());
        store.ExecuteNonQuery();
        return new EnqueueResult(ingestion.Id, EnqueueOutcome.Created);
    }

    /// <summary>Only this process writes the file: the wake-up signal tells the dispatcher everything.</summary>
    public TimeSpan? PollInterval => null;

    public async Task<WindowClaim> ClaimWindowAsync(DateTimeOffset now, int maxIds, WindowSpacing spacing, CancellationToken cancellationToken)
    {
        var window = spacing.Window;
        ArgumentOutOfRangeException.ThrowIfLessThan(maxIds, 1);
        var committing = false;
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var writer = Writer;
            await using var transaction = writer.BeginTransaction(deferred: false);

            // The limiter: the log's newest start counts, so the limit holds across restarts. A window still
            // running can only be this process's own (start-up recovers the rest), and the dispatcher does
            // not ask while it runs one; refusing anyway keeps the in-flight bound a property of the store.
            await using (var limiter = writer.CreateCommand())
            {
                limiter.Transaction = transaction;
                // No window starts during a pause the upstream asked for; only the newest window can hold one,
                // since none starts after it until the pause is over.
                limiter.CommandText = """
                    SELECT newest.started_at, EXISTS (SELECT 1 FROM windows WHERE state = 0), newest.paused_until, newest.finished_at
                    FROM (SELECT 1) LEFT JOIN (SELECT started_at, paused_until, finished_at FROM windows ORDER BY seq DESC LIMIT 1) newest
                    """;
                await using var reader = await limiter.ExecuteReaderAsync(cancellationToken);
                await reader.ReadAsync(cancellationToken);
                var notBefore = reader.IsDBNull(0) ? DateTimeOffset.MinValue : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(0)) + window;
                if (reader.GetBoolean(1))
                {
                    return WindowClaim.NotYet(notBefore > now ? notBefore - now : window);
                }

                if (!reader.IsDBNull(2) && DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2)) is var pausedUntil && pausedUntil > notBefore)
                {
                    notBefore = pausedUntil;
                }

                if (spacing.FromFinish && !reader.IsDBNull(3) && DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3)) + window is var afterFinish && afterFinish > notBefore)
                {
                    notBefore = afterFinish;
                }

                if (now < notBefore)
                {
                    return WindowClaim.NotYet(notBefore - now);
                }
            }

            // Stored in whole milliseconds, rounded up, so the logged start is never earlier than the real one.
            var startedAt = CeilingToMillisecond(now);
            var candidates = new List<Candidate>(maxIds * 2);

            // Ids handed back by an abandoned window or waiting for a retry: few, and ahead of their
            // ingestion's unstarted ids. A retry is due once its delay is over; its earlier calls are counted.
            await using (var requeued = writer.CreateCommand())
            {
                requeued.Transaction = transaction;
                requeued.CommandText = """
                    SELECT q.ingestion_seq, i.id, i.priority, i.created_at, q.position, coalesce(r.attempts, 0), coalesce(r.throttled, 0)
                    FROM requeued q CROSS JOIN ingestions i ON i.seq = q.ingestion_seq
                    LEFT JOIN results r ON r.ingestion_seq = q.ingestion_seq AND r.position = q.position
                    WHERE q.not_before <= $now
                    ORDER BY i.priority, i.created_at, q.ingestion_seq, q.position
                    LIMIT $limit
                    """;
                requeued.Parameters.AddWithValue("$limit", maxIds);
                requeued.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
                await using var reader = await requeued.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    candidates.Add(new Candidate(reader.GetInt64(0), ReadGuid(reader, 1), (Priority)reader.GetInt32(2), reader.GetInt64(3), reader.GetInt32(4), Requeued: true, reader.GetInt32(5), reader.GetInt32(6)));
                }
            }

            // The next ingestions with unstarted ids, from the partial index; each gives at least one id.
            await using (var pending = writer.CreateCommand())
            {
                pending.Transaction = transaction;
                pending.CommandText = """
                    SELECT seq, id, priority, created_at, started, total
                    FROM ingestions
                    WHERE started < total
                    ORDER BY priority, created_at, seq
                    LIMIT $limit
                    """;
                pending.Parameters.AddWithValue("$limit", maxIds);
                await using var reader = await pending.ExecuteReaderAsync(cancellationToken);
                var taken = 0;
                while (taken < maxIds && await reader.ReadAsync(cancellationToken))
                {
                    var seq = reader.GetInt64(0);
                    var ingestionId = ReadGuid(reader, 1);
                    var priority = (Priority)reader.GetInt32(2);
                    var createdAt = reader.GetInt64(3);
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
                await using var due = writer.CreateCommand();
                due.Transaction = transaction;
                due.CommandText = "SELECT min(not_before) FROM requeued";
                return await due.ExecuteScalarAsync(cancellationToken) is long first
                    ? WindowClaim.NothingDueFor(DateTimeOffset.FromUnixTimeMilliseconds(first) - now)
                    : WindowClaim.NothingWaits;
            }

            candidates.Sort(static (a, b) => a.OrderKey.CompareTo(b.OrderKey));
            if (candidates.Count > maxIds)
            {
                candidates.RemoveRange(maxIds, candidates.Count - maxIds);
            }

            var items = new WindowItem[candidates.Count];
            for (var i = 0; i < candidates.Count; i++)
            {
                var candidate = candidates[i];
                items[i] = new WindowItem(candidate.IngestionSeq, candidate.IngestionId, candidate.Priority, candidate.Position, ReadId(writer, candidate.IngestionSeq, candidate.Position), candidate.PriorAttempts, candidate.PriorThrottled);
            }

            long windowSeq;
            await using (var insertWindow = writer.CreateCommand())
            {
                insertWindow.Transaction = transaction;
                insertWindow.CommandText = """
                    INSERT INTO windows (started_at, state, id_count) VALUES ($started_at, 0, $id_count)
                    RETURNING seq
                    """;
                insertWindow.Parameters.AddWithValue("$started_at", startedAt.ToUnixTimeMilliseconds());
                insertWindow.Parameters.AddWithValue("$id_count", items.Length);
                windowSeq = (long)(await insertWindow.ExecuteScalarAsync(cancellationToken))!;
            }

            await InsertWindowItemsAsync(writer, transaction, windowSeq, items, cancellationToken);

            await using (var advance = writer.CreateCommand())
            {
                advance.Transaction = transaction;
                advance.CommandText = "UPDATE ingestions SET started = started + $count WHERE seq = $seq";
                var seq = advance.Parameters.Add("$seq", SqliteType.Integer);
                var count = advance.Parameters.Add("$count", SqliteType.Integer);
                foreach (var group in candidates.Where(c => !c.Requeued).GroupBy(c => c.IngestionSeq))
                {
                    seq.Value = group.Key;
                    count.Value = group.Count();
                    await advance.ExecuteNonQueryAsync(cancellationToken);
                }
            }

            await using (var unqueue = writer.CreateCommand())
            {
                unqueue.Transaction = transaction;
                unqueue.CommandText = "DELETE FROM requeued WHERE ingestion_seq = $seq AND position = $position";
                var seq = unqueue.Parameters.Add("$seq", SqliteType.Integer);
                var position = unqueue.Parameters.Add("$position", SqliteType.Integer);
                foreach (var candidate in candidates.Where(c => c.Requeued))
                {
                    seq.Value = candidate.IngestionSeq;
                    position.Value = candidate.Position;
                    await unqueue.ExecuteNonQueryAsync(cancellationToken);
                }
            }

            committing = true;
            _memo.Progressing();
            await transaction.CommitAsync(cancellationToken);
            foreach (var candidate in candidates)
            {
                if (candidate.Requeued)
                {
                    _counters.AddRequeued(candidate.Priority, -1);
                }
                else
                {
                    _counters.AddStarted(candidate.Priority, 1);
                }
            }

            return WindowClaim.Acquired(new ClaimedWindow(windowSeq, DateTimeOffset.FromUnixTimeMilliseconds(startedAt.ToUnixTimeMilliseconds()), items));
        }
        finally
        {
            if (committing)
            {
                _memo.Progressed(); // even if the commit failed: a needless new generation costs one read
            }

            _writeLock.Release();
        }
    }

    private static async Task InsertWindowItemsAsync(SqliteConnection writer, SqliteTransaction transaction, long windowSeq, WindowItem[] items, CancellationToken cancellationToken)
    {
        await using var insert = writer.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = """
            INSERT INTO window_items (window_seq, ingestion_seq, first_pos, count, ids)
            VALUES ($window_seq, $ingestion_seq, $first_pos, $count, $ids)
            """;
        insert.Parameters.AddWithValue("$window_seq", windowSeq);
        var ingestionSeq = insert.Parameters.Add("$ingestion_seq", SqliteType.Integer);
        var firstPos = insert.Parameters.Add("$first_pos", SqliteType.Integer);
        var count = insert.Parameters.Add("$count", SqliteType.Integer);
        var ids = insert.Parameters.Add("$ids", SqliteType.Blob);
        foreach (var run in Runs(items))
        {
            ingestionSeq.Value = run.IngestionSeq;
            firstPos.Value = run.FirstPosition;
            count.Value = run.Ids.Length;
            ids.Value = IdBlob.Pack(run.Ids);
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>Groups a window's items into runs of consecutive positions of one ingestion.</summary>
    internal static IEnumerable<(long IngestionSeq, int FirstPosition, int[] Ids)> Runs(IReadOnlyList<WindowItem> items)
    {
        var ordered = items.OrderBy(item => item.IngestionSeq).ThenBy(item => item.Position).ToList();
        var start = 0;
        for (var i = 1; i <= ordered.Count; i++)
        {
            if (i == ordered.Count || ordered[i].IngestionSeq != ordered[start].IngestionSeq || ordered[i].Position != ordered[i - 1].Position + 1)
            {
                yield return (ordered[start].IngestionSeq, ordered[start].Position, ordered.Skip(start).Take(i - start).Select(item => item.Id).ToArray());
                start = i;
            }
        }
    }

    public async Task CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(outcome.Fetches.Count, window.Items.Count);
        var committing = false;
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var writer = Writer;
            await using var transaction = writer.BeginTransaction(deferred: false);
            var finished = outcome.FinishedAt.ToUnixTimeMilliseconds();
            long? pausedUntil = outcome.Pause is { } pause ? CeilingToMillisecond(outcome.FinishedAt + pause).ToUnixTimeMilliseconds() : null;
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
                close.Parameters.AddWithValue("$paused_until", (object?)pausedUntil ?? DBNull.Value);
                close.Parameters.AddWithValue("$seq", window.Seq);
                if (await close.ExecuteNonQueryAsync(cancellationToken) != 1)
                {
                    // Counting its ids twice would corrupt progress: a window is completed once or not at all.
                    throw new InvalidOperationException($"Window {window.Seq} is no longer running; its results are not stored.");
                }
            }

            await using (var store = writer.CreateCommand())
            {
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
                store.Parameters.AddWithValue("$fetched_at", finished);
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
                    long? next = fetch is { State: FetchState.Retrying, RetryAfter: { } delay } ? CeilingToMillisecond(outcome.FinishedAt + delay).ToUnixTimeMilliseconds() : null;
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
                    nextAttemptAt.Value = (object?)next ?? DBNull.Value;
                    await store.ExecuteNonQueryAsync(cancellationToken);

                    if (fetch.State == FetchState.Retrying)
                    {
                        requeueSeq.Value = item.IngestionSeq;
                        requeuePosition.Value = item.Position;
                        notBefore.Value = next ?? finished;
                        await requeue.ExecuteNonQueryAsync(cancellationToken);
                    }
                }
            }

            await using (var progress = writer.CreateCommand())
            {
                progress.Transaction = transaction;
                progress.CommandText = "UPDATE ingestions SET completed = completed + $count, failed = failed + $failed WHERE seq = $seq";
                var seq = progress.Parameters.Add("$seq", SqliteType.Integer);
                var count = progress.Parameters.Add("$count", SqliteType.Integer);
                var failed = progress.Parameters.Add("$failed", SqliteType.Integer);
                foreach (var group in Enumerable.Range(0, window.Items.Count)
                    .Where(i => outcome.Fetches[i].State != FetchState.Retrying)
                    .GroupBy(i => window.Items[i].IngestionSeq))
                {
                    seq.Value = group.Key;
                    count.Value = group.Count();
                    failed.Value = group.Count(i => outcome.Fetches[i].State == FetchState.Failed);
                    await progress.ExecuteNonQueryAsync(cancellationToken);
                }
            }

            committing = true;
            _memo.Progressing();
            await transaction.CommitAsync(cancellationToken);
            for (var i = 0; i < window.Items.Count; i++)
            {
                if (outcome.Fetches[i].State == FetchState.Retrying)
                {
                    _counters.AddRequeued(window.Items[i].Priority, 1);
                }
            }

            if (pausedUntil is { } until)
            {
                Volatile.Write(ref _pausedUntil, until);
            }
        }
        finally
        {
            if (committing)
            {
                _memo.Progressed(); // even if the commit failed: a needless new generation costs one read
            }

            _writeLock.Release();
        }
    }

    public async Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken)
    {
        var committing = false;
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var writer = Writer;
            await using var transaction = writer.BeginTransaction(deferred: false);
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

            await using (var requeue = writer.CreateCommand())
            {
                requeue.Transaction = transaction;
                requeue.CommandText = "INSERT OR IGNORE INTO requeued (ingestion_seq, position) VALUES ($seq, $position)";
                var seq = requeue.Parameters.Add("$seq", SqliteType.Integer);
                var position = requeue.Parameters.Add("$position", SqliteType.Integer);
                foreach (var item in window.Items)
                {
                    seq.Value = item.IngestionSeq;
                    position.Value = item.Position;
                    await requeue.ExecuteNonQueryAsync(cancellationToken);
                }
            }

            committing = true;
            _memo.Progressing();
            await transaction.CommitAsync(cancellationToken);
            foreach (var item in window.Items)
            {
                _counters.AddRequeued(item.Priority, 1);
            }
        }
        finally
        {
            if (committing)
            {
                _memo.Progressed(); // even if the commit failed: a needless new generation costs one read
            }

            _writeLock.Release();
        }
    }

    private async Task<IReadOnlyList<ClaimedWindow>> ReadRunningWindowsAsync(CancellationToken cancellationToken)
    {
        var windows = new Dictionary<long, (DateTimeOffset StartedAt, List<WindowItem> Items)>();
        await using var command = Writer.CreateCommand();
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
                window = (DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)), []);
                windows.Add(seq, window);
            }

            var ids = IdBlob.Unpack((byte[])reader.GetValue(6));
            for (var i = 0; i < ids.Length; i++)
            {
                window.Items.Add(new WindowItem(reader.GetInt64(2), ReadGuid(reader, 3), (Priority)reader.GetInt32(4), reader.GetInt32(5) + i, ids[i]));
            }
        }

        return [.. windows.Select(pair => new ClaimedWindow(pair.Key, pair.Value.StartedAt, pair.Value.Items))];
    }

    public async Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        // Taken before reading: a commit during the read starts new generations, and this read's answer
        // goes to the old ones, where it is never served.
        var known = _memo.Known;
        var unknown = _memo.Unknown;
        if (known.TryGet(ingestionId, out var memo))
        {
            return Live(memo);
        }

        if (unknown.TryGet(ingestionId, out _))
        {
            return null;
        }

        var read = await ReadIngestionAsync(ingestionId, cancellationToken);
        if (read is null)
        {
            unknown.Add(ingestionId, true, 64);
            return null;
        }

        known.Add(ingestionId, read, read.Bytes);
        return Live(read);
    }

    /// <summary>A stored read with what the live counters and the pause say now.</summary>
    private IngestionSnapshot Live(SnapshotMemo.Read read) => read.Snapshot with
    {
        IdsAhead = read.IdsBefore is { } before ? _counters.IdsAhead(read.Snapshot.Priority, before, read.RequeuedAhead) : 0,
        PausedUntil = PausedUntil,
    };

    private async Task<SnapshotMemo.Read?> ReadIngestionAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        using var session = await RentReaderAsync(cancellationToken);

        // One statement, so the counters, the spans and the requeued positions come from one snapshot
        // without the cost of BEGIN and COMMIT around three queries. The first column says what a row is.
        // CROSS JOIN makes SQLite walk the (nearly always empty) requeued table first: left to itself it
        // may walk every ingestion instead, and a status read then grows with the queue.
        var command = session.Command("""
            WITH i AS (SELECT seq, priority, created_at, batch_size, started, completed, total, ids, ids_before, failed FROM ingestions WHERE id = $id)
            SELECT 0, priority, created_at, batch_size, started, completed, ids FROM i
            UNION ALL
            SELECT 1, wi.first_pos, wi.count, w.started_at, w.finished_at, w.state, NULL
            FROM i JOIN window_items wi ON wi.ingestion_seq = i.seq JOIN windows w ON w.seq = wi.window_seq
            UNION ALL
            SELECT 2, q.position, NULL, NULL, NULL, NULL, NULL
            FROM i JOIN requeued q ON q.ingestion_seq = i.seq
            UNION ALL
            SELECT 3, i.ids_before,
                (SELECT count(*) FROM requeued q CROSS JOIN ingestions r ON r.seq = q.ingestion_seq
                 WHERE r.priority = i.priority AND (r.created_at, r.seq) <= (i.created_at, i.seq)),
                NULL, NULL, NULL, NULL
            FROM i WHERE i.started < i.total
            UNION ALL
            SELECT 4, r.position, NULL, NULL, NULL, NULL, NULL
            FROM i JOIN results r ON r.ingestion_seq = i.seq AND r.state = 2 WHERE i.failed > 0
            """, "$id");
        command.Parameters[0].Value = IdBytes(ingestionId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);

        Priority priority = default;
        DateTimeOffset createdAt = default;
        int batchSize = 0, started = 0, completed = 0;
        int[]? ids = null;
        var spans = new List<WindowSpan>();
        var requeued = new List<int>();
        List<int>? failed = null;
        long? idsBefore = null;
        long requeuedAhead = 0;
        while (await reader.ReadAsync(cancellationToken))
        {
            switch (reader.GetInt32(0))
            {
                case 0:
                    priority = (Priority)reader.GetInt32(1);
                    createdAt = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2));
                    batchSize = reader.GetInt32(3);
                    started = reader.GetInt32(4);
                    completed = reader.GetInt32(5);
                    ids = IdBlob.Read(reader, 6);
                    break;
                case 1:
                    spans.Add(new WindowSpan(
                        reader.GetInt32(1),
                        reader.GetInt32(2),
                        DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3)),
                        reader.IsDBNull(4) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)),
                        (WindowState)reader.GetInt32(5)));
                    break;
                case 2:
                    requeued.Add(reader.GetInt32(1));
                    break;
                case 3:
                    idsBefore = reader.GetInt64(1);
                    requeuedAhead = reader.GetInt64(2);
                    break;
                default:
                    (failed ??= []).Add(reader.GetInt32(1));
                    break;
            }
        }

        return ids is null ? null : new SnapshotMemo.Read(
            new IngestionSnapshot(ingestionId, priority, createdAt, batchSize, ids, started, completed, spans, requeued, FailedPositions: failed),
            idsBefore,
            requeuedAhead);
    }

    public async Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        using var session = await RentReaderAsync(cancellationToken);
        var command = session.Command("""
            SELECT w.seq, w.started_at, w.finished_at, w.state, i.id, i.priority, wi.first_pos, wi.ids, w.paused_until
            FROM (SELECT * FROM windows ORDER BY seq DESC LIMIT $limit) w
            JOIN window_items wi ON wi.window_seq = w.seq
            JOIN ingestions i ON i.seq = wi.ingestion_seq
            ORDER BY w.seq DESC, i.priority, i.created_at, wi.ingestion_seq, wi.first_pos
            """, "$limit");
        command.Parameters[0].Value = limit;
        var windows = new List<WindowRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            WindowLogRows.Add(
                windows,
                reader.GetInt64(0),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)),
                reader.IsDBNull(2) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2)),
                (WindowState)reader.GetInt32(3),
                reader.IsDBNull(8) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(8)),
                new WindowRecordItem(ReadGuid(reader, 4), (Priority)reader.GetInt32(5), reader.GetInt32(6), IdBlob.Read(reader, 7)));
        }

        return windows;
    }

    public async Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        using var session = await RentReaderAsync(cancellationToken);
        var command = session.Command("""
            SELECT id, priority, created_at, batch_size, total, started, completed, failed
            FROM ingestions ORDER BY seq DESC LIMIT $limit
            """, "$limit");
        command.Parameters[0].Value = limit;
        var ingestions = new List<IngestionSummary>(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ingestions.Add(new IngestionSummary(
                ReadGuid(reader, 0),
                (Priority)reader.GetInt32(1),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2)),
                reader.GetInt32(3),
                reader.GetInt32(4),
                reader.GetInt32(5),
                reader.GetInt32(6),
                reader.GetInt32(7)));
        }

        return ingestions;
    }

    public Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken) => Task.FromResult(_counters.Depth);

    /// <summary>Kept in memory by the one writer, like the counters; the newest window's pause.</summary>
    private DateTimeOffset? PausedUntil => Volatile.Read(ref _pausedUntil) is var until && until != long.MinValue ? DateTimeOffset.FromUnixTimeMilliseconds(until) : null;

    public Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken) => Task.FromResult(PausedUntil);

    public async Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        using var session = await RentReaderAsync(cancellationToken);

        // The row at position -1 says the ingestion exists, so an unknown id and a page past the end differ.
        var command = session.Command("""
            WITH i AS (SELECT seq FROM ingestions WHERE id = $id)
            SELECT -1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM i
            UNION ALL
            SELECT * FROM (
                SELECT r.position, r.id, r.state, r.http_status, r.body, r.truncated, r.attempts, r.error, r.fetched_at, r.next_attempt_at
                FROM i JOIN results r ON r.ingestion_seq = i.seq
                WHERE r.position > $after
                ORDER BY r.position
                LIMIT $limit)
            """, "$id", "$after", "$limit");
        command.Parameters[0].Value = IdBytes(ingestionId);
        command.Parameters[1].Value = afterPosition;
        command.Parameters[2].Value = limit;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await IdResultRows.ReadAsync(reader, static (row, ordinal) => DateTimeOffset.FromUnixTimeMilliseconds(row.GetInt64(ordinal)), cancellationToken);
    }

    public async Task ProbeAsync(CancellationToken cancellationToken)
    {
        // A fresh connection that may not create the file: a deleted or unmounted database fails here,
        // where pooled connections would go on reading a file that is no longer there.
        var builder = new SqliteConnectionStringBuilder(_connectionString) { Pooling = false, Mode = SqliteOpenMode.ReadWrite };
        await using var connection = new SqliteConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM schema_migrations";
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        while (_readers.TryTake(out var session))
        {
            session.Close();
        }

        _enqueues.Writer.TryComplete();
        if (_groupCommit is not null)
        {
            await _groupCommit;
        }

        await _stopping.CancelAsync();
        if (_checkpoints is not null)
        {
            await _checkpoints;
        }

        _stopping.Dispose();

        // Finalized before the connection closes, which would otherwise keep it open as a zombie.
        _insertIngestion?.Dispose();
        _begin?.Dispose();
        _commit?.Dispose();
        _rollback?.Dispose();

        if (_writer is not null)
        {
            await _writer.DisposeAsync();
        }

        _writeLock.Dispose();
    }

    private static DateTimeOffset CeilingToMillisecond(DateTimeOffset time)
    {
        var remainder = time.UtcTicks % TimeSpan.TicksPerMillisecond;
        return remainder == 0 ? time : time.AddTicks(TimeSpan.TicksPerMillisecond - remainder);
    }

    private SqliteConnection Writer => _writer ?? throw new InvalidOperationException("The store is not initialized: call InitializeAsync at start-up.");

    /// <summary>
    /// A read connection with its statements already prepared. Preparing the status query costs ten
    /// times more than running it, so sessions are kept and reused instead of opened per request.
    /// </summary>
    private async ValueTask<ReaderSession> RentReaderAsync(CancellationToken cancellationToken)
    {
        if (_readers.TryTake(out var session))
        {
            return session;
        }

        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        return new ReaderSession(connection, this);
    }

    private void ReturnReader(ReaderSession session)
    {
        if (_readers.Count < MaxIdleReaders && !_disposed)
        {
            _readers.Add(session);
        }
        else
        {
            session.Close();
        }
    }

    private static async Task ExecuteAsync(SqliteConnection connection, SqliteTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// An ingestion id as stored: network byte order, in which UUID version 7 ids sort by time, so a new
    /// id always goes on the last page of the id index (migration 004 reordered the older rows).
    /// </summary>
    private static byte[] IdBytes(Guid id)
    {
        var bytes = new byte[16];
        WriteId(id, bytes);
        return bytes;
    }

    private static void WriteId(Guid id, Span<byte> destination) => id.TryWriteBytes(destination, bigEndian: true, out _);

    private static Guid ReadGuid(SqliteDataReader reader, int ordinal) => new((byte[])reader.GetValue(ordinal), bigEndian: true);

    /// <summary>Reads one id out of an ingestion's blob without loading the rest of it.</summary>
    private static int ReadId(SqliteConnection connection, long ingestionSeq, int position)
    {
        using var blob = new SqliteBlob(connection, "ingestions", "ids", ingestionSeq, readOnly: true);
        Span<byte> bytes = stackalloc byte[IdBlob.BytesPerId];
        blob.Position = (long)position * IdBlob.BytesPerId;
        blob.ReadExactly(bytes);
        return System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes);
    }

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Checkpointing the write-ahead log failed; trying again in a second")]
    private static partial void LogCheckpointFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "The write-ahead log ({Bytes} bytes) could not start over: a reader still uses older frames; trying again in a second")]
    private static partial void LogRestartPostponed(ILogger logger, long bytes);

    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "Window {WindowSeq} was left running by a process that stopped; its {IdCount} ids are back in the queue and will be fetched again")]
    private static partial void LogRecoveredWindow(ILogger logger, long windowSeq, int idCount);

    /// <summary>A pooled read connection and its prepared commands, keyed by their SQL text.</summary>
    private sealed class ReaderSession(SqliteConnection connection, SqliteIngestionStore owner) : IDisposable
    {
        private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);

        public SqliteCommand Command(string sql, params string[] parameters)
        {
            if (!_commands.TryGetValue(sql, out var command))
            {
                command = connection.CreateCommand();
                command.CommandText = sql;
                foreach (var name in parameters)
                {
                    command.Parameters.Add(new SqliteParameter { ParameterName = name });
                }

                command.Prepare();
                _commands.Add(sql, command);
            }

            return command;
        }

        /// <summary>Returns the session to the pool.</summary>
        public void Dispose() => owner.ReturnReader(this);

        public void Close()
        {
            foreach (var command in _commands.Values)
            {
                command.Dispose();
            }

            connection.Dispose();
        }
    }

    /// <summary>A request waiting for the group commit, and the promise of its outcome in one object.</summary>
    private sealed class PendingEnqueue(NewIngestion ingestion) : TaskCompletionSource<EnqueueResult>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public NewIngestion Ingestion { get; } = ingestion;
    }

    private readonly record struct Candidate(long IngestionSeq, Guid IngestionId, Priority Priority, long CreatedAt, int Position, bool Requeued, int PriorAttempts = 0, int PriorThrottled = 0)
    {
        public (int, long, long, int) OrderKey => ((int)Priority, CreatedAt, IngestionSeq, Position);
    }
}
