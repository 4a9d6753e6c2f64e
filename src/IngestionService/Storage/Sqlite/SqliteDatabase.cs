using IngestionService.Ingest;
using IngestionService.Scheduling;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// The embedded store's file and what its one writer knows: one SQLite file in WAL mode. All writes go
/// through one connection under one lock (SQLite has one writer anyway, and this way no write ever waits
/// on SQLITE_BUSY); reads use pooled connections and see a consistent snapshot without blocking the
/// writer. Because this process is the file's only writer, it keeps in memory what every commit changes:
/// the queue's running totals, the newest pause, and the memo of status reads.
/// </summary>
public sealed partial class SqliteDatabase : IAsyncDisposable
{
    internal const int NewFilePageSize = 1024;
    internal const long DefaultWalRestartBytes = 64L * 1024 * 1024;

    private readonly ILogger<SqliteDatabase> _logger;
    private readonly SqliteSynchronous _synchronous;
    private SqliteConnection? _writer;
    private long _pausedUntil = long.MinValue;
    private QueuePause? _queuePause;
    private bool _statusesChanging; // under WriteLock only

    public SqliteDatabase(IOptions<StorageOptions> options, ILogger<SqliteDatabase> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new SqliteConnectionStringBuilder(options.Value.ConnectionString) { Pooling = true };
        ConnectionString = builder.ConnectionString;
        _synchronous = options.Value.Synchronous;
        _logger = logger;
        Readers = new SqliteReaderPool(ConnectionString);

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

    internal string ConnectionString { get; }

    /// <summary>The one connection that writes, used only under <see cref="WriteLock"/>.</summary>
    internal SqliteConnection Writer => _writer ?? throw new InvalidOperationException("The store is not initialized: call InitializeAsync at start-up.");

    internal SemaphoreSlim WriteLock { get; } = new(1, 1);

    /// <summary>
    /// Runs one write transaction (BEGIN IMMEDIATE) on the writer under <see cref="WriteLock"/>. It commits
    /// with <see cref="CommitAsync"/> when what it wrote changes status reads, or with the transaction's own
    /// commit when it does not; left uncommitted, it rolls back.
    /// </summary>
    internal async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await WriteLock.WaitAsync(cancellationToken);
        try
        {
            await using var transaction = Writer.BeginTransaction(deferred: false);
            return await work(Writer, transaction);
        }
        finally
        {
            if (_statusesChanging)
            {
                _statusesChanging = false;
                Memo.Progressed(); // even if the commit failed: a needless new generation costs one read
            }

            WriteLock.Release();
        }
    }

    internal Task WriteAsync(Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        WriteAsync<bool>(async (writer, transaction) =>
        {
            await work(writer, transaction);
            return true;
        }, cancellationToken);

    /// <summary>
    /// Commits a write that changes what status reads show: the memo closes its generation first, so no
    /// read caches the old state as new, and opens a new one once the commit is done (<see cref="WriteAsync{T}"/>).
    /// </summary>
    internal async Task CommitAsync(SqliteTransaction transaction, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        _statusesChanging = true;
        Memo.Progressing();
        await transaction.CommitAsync(cancellationToken);
    }

    internal SqliteReaderPool Readers { get; }

    internal QueueTotals Totals { get; } = new();

    internal SnapshotMemo Memo { get; } = new();

    /// <summary>The newest created time committed: created times never go backwards in arrival order.</summary>
    internal long LastCreatedAt { get; set; }

    /// <summary>The newest window's pause, kept by the one writer like the totals.</summary>
    internal DateTimeOffset? PausedUntil
    {
        get => Volatile.Read(ref _pausedUntil) is var until && until != long.MinValue ? DateTimeOffset.FromUnixTimeMilliseconds(until) : null;
        set => Volatile.Write(ref _pausedUntil, value?.ToUnixTimeMilliseconds() ?? long.MinValue);
    }

    /// <summary>The operator's pause of the queue, kept by the one writer after each commit that changes it; null while it runs.</summary>
    internal QueuePause? QueuePause
    {
        get => Volatile.Read(ref _queuePause);
        set => Volatile.Write(ref _queuePause, value);
    }

    internal SqliteCheckpointer? Checkpointer { get; private set; }

    /// <summary>How often the background checkpoint runs (tests lengthen it to drive passes themselves).</summary>
    internal TimeSpan CheckpointInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The size the write-ahead log is brought back to once it grows past it.</summary>
    internal long WalRestartBytes { get; init; } = DefaultWalRestartBytes;

    /// <summary>Opens the writer, sets the file up and applies the schema.</summary>
    internal async Task OpenAsync(CancellationToken cancellationToken)
    {
        _writer = new SqliteConnection(ConnectionString);
        await _writer.OpenAsync(cancellationToken);

        // A new file gets 1 KiB pages (an existing one keeps its own): every commit rewrites whole pages in
        // the log, and a group commit's rows are small. It must come before the switch to WAL to take effect.
        // Incremental auto-vacuum lets the retention sweeper hand freed pages back to the file system; it too
        // takes effect on a new file only before its first table, so before the schema.
        await ExecuteAsync(_writer, null, $"""
            PRAGMA page_size = {NewFilePageSize};
            PRAGMA auto_vacuum = INCREMENTAL;
            PRAGMA journal_mode = WAL;
            PRAGMA synchronous = {(_synchronous == SqliteSynchronous.Full ? "FULL" : "NORMAL")};
            PRAGMA wal_autocheckpoint = 0;
            PRAGMA journal_size_limit = {WalRestartBytes};
            """, cancellationToken);
        await SqliteSchema.ApplyAsync(_writer, cancellationToken);
        await EnsureIncrementalVacuumAsync(cancellationToken);
        await using var pageSize = _writer.CreateCommand();
        pageSize.CommandText = "PRAGMA page_size";
        var pageBytes = (long)(await pageSize.ExecuteScalarAsync(cancellationToken))!;

        // SQLite's own name for the file (a URI or |DataDirectory| resolved); empty when in memory.
        Checkpointer = new SqliteCheckpointer(ConnectionString, WriteLock, _writer.DataSource, pageBytes, CheckpointInterval, WalRestartBytes, _logger);
    }

    /// <summary>
    /// The running totals, the upstream's pause and the operator's, read once at start; from then on the
    /// writer keeps them as it commits. Purged ingestions count in the totals as they did before (their ids
    /// were enqueued and started), so the stored ids before each waiting ingestion stay true.
    /// </summary>
    internal async Task LoadTotalsAsync(CancellationToken cancellationToken)
    {
        await using var command = Writer.CreateCommand();
        command.CommandText = """
            SELECT 0, priority, sum(total), sum(started), max(created_at) FROM ingestions GROUP BY priority
            UNION ALL
            SELECT 0, priority, ids, ids, 0 FROM purged_totals WHERE priority >= 0
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
                switch (reader.GetInt32(0))
                {
                    case 0:
                        totals[priority, 0] += reader.GetInt64(2); // kept ingestions, then purged ones
                        totals[priority, 1] += reader.GetInt64(3);
                        LastCreatedAt = Math.Max(LastCreatedAt, reader.GetInt64(4));
                        break;
                    case 1:
                        totals[priority, 2] = reader.GetInt64(2);
                        break;
                    default:
                        PausedUntil = DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4));
                        break;
                }
            }
        }

        await using (var pause = Writer.CreateCommand())
        {
            pause.CommandText = "SELECT paused_at, pause_reason FROM queue_control WHERE id = 1 AND paused_at IS NOT NULL";
            await using var reader = await pause.ExecuteReaderAsync(cancellationToken);
            QueuePause = await reader.ReadAsync(cancellationToken)
                ? new QueuePause(SqliteIds.Time(reader, 0), reader.IsDBNull(1) ? null : reader.GetString(1))
                : null;
        }

        foreach (var priority in (ReadOnlySpan<Priority>)[Priority.High, Priority.Medium, Priority.Low])
        {
            Totals.Set(priority, totals[(int)priority, 0], totals[(int)priority, 1], totals[(int)priority, 2]);
        }
    }

    /// <summary>
    /// A file made before incremental auto-vacuum was turned on is rebuilt once (VACUUM) to switch it: the
    /// only way SQLite changes the mode of a file that has tables. It takes a while on a large file, and
    /// free space of about its size; it is logged with the file's size before and after.
    /// </summary>
    private async Task EnsureIncrementalVacuumAsync(CancellationToken cancellationToken)
    {
        await using var mode = Writer.CreateCommand();
        mode.CommandText = "PRAGMA auto_vacuum";
        if ((long)(await mode.ExecuteScalarAsync(cancellationToken))! == 2 || Writer.DataSource is "" or ":memory:")
        {
            return;
        }

        var before = StoreBytes();
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        await ExecuteAsync(Writer, null, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM;", cancellationToken);
        LogVacuumed(_logger, Writer.DataSource, before, StoreBytes(), System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>
    /// Caps the file at the pages it has now (<c>PRAGMA max_page_count</c> on the writer), so the next
    /// write that needs a page fails with <c>SQLITE_FULL</c> as on a full disk; with false, lifts the cap.
    /// SQLite's own limit, which the tests use to fill the disk without filling one.
    /// </summary>
    internal Task CapAtCurrentSizeAsync(bool cap, CancellationToken cancellationToken) =>
        WriteAsync(async (writer, transaction) =>
        {
            await using var command = writer.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "PRAGMA page_count";
            var pages = cap ? (long)(await command.ExecuteScalarAsync(cancellationToken))! : uint.MaxValue - 1L;
            command.CommandText = $"PRAGMA max_page_count = {pages}";
            await command.ExecuteNonQueryAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }, cancellationToken);

    /// <summary>The bytes of the file and its write-ahead log on disk; zero in memory.</summary>
    internal long StoreBytes()
    {
        var path = _writer?.DataSource;
        if (string.IsNullOrEmpty(path) || path == ":memory:")
        {
            return 0;
        }

        return Length(path) + Length(path + "-wal");

        static long Length(string file) => File.Exists(file) ? new FileInfo(file).Length : 0;
    }

    [LoggerMessage(EventId = Observability.LogEvents.StoreVacuumed, Level = LogLevel.Warning, Message = "Switched {Path} to incremental auto-vacuum, once, so retention gives space back: {BytesBefore} bytes before, {BytesAfter} after, in {Seconds:0.0} s")]
    private static partial void LogVacuumed(ILogger logger, string path, long bytesBefore, long bytesAfter, double seconds);

    internal static async Task ExecuteAsync(SqliteConnection connection, SqliteTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        Readers.Dispose();
        if (Checkpointer is not null)
        {
            await Checkpointer.DisposeAsync();
        }

        if (_writer is not null)
        {
            await _writer.DisposeAsync();
        }

        WriteLock.Dispose();
    }
}
