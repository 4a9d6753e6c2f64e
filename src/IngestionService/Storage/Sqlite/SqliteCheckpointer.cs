using IngestionService.Observability;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// Copies the write-ahead log into the database once a second from a connection of its own. SQLite
/// would otherwise do it inside whichever commit crosses the log's size limit, and that commit (with
/// every request waiting on it) would pay for copying and flushing megabytes. A passive checkpoint
/// never blocks the writer or the readers.
/// A passive checkpoint alone never lets the log start over while commits keep coming: frames
/// appended while it copies are always left, and SQLite reuses the log from its start only once every
/// frame is in the database. So once the log passes <c>walRestartBytes</c>, a second checkpoint
/// runs under the write lock: it copies only what arrived during the first, waits out readers of older
/// frames, and the next commit then starts the log over, truncated to that size (<c>journal_size_limit</c>).
/// </summary>
/// <param name="connectionString">The database's, for a connection of the checkpointer's own.</param>
/// <param name="writeLock">The writer's lock, held by the pass that lets the log start over.</param>
/// <param name="databasePath">SQLite's own name for the file (empty when in memory); its log is beside it.</param>
/// <param name="pageSize">The file's page size, which sizes what the locked pass may be left to copy.</param>
/// <param name="interval">How often the background checkpoint runs.</param>
/// <param name="walRestartBytes">The size the log is brought back to once it grows past it; it also bounds the log a start after a crash reads back.</param>
/// <param name="logger">Where a failed pass or a postponed restart is reported.</param>
internal sealed partial class SqliteCheckpointer(string connectionString, SemaphoreSlim writeLock, string? databasePath, long pageSize, TimeSpan interval, long walRestartBytes, ILogger logger) : IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly string? _walPath = string.IsNullOrEmpty(databasePath) ? null : databasePath + "-wal";
    private Task? _loop;
    private long _framesAtRestart = -1;

    /// <summary>The write-ahead log file's size now (0 for an in-memory database).</summary>
    public long WalBytes => _walPath is not null && new FileInfo(_walPath) is { Exists: true } wal ? wal.Length : 0;

    /// <summary>Frames (pages) the locked pass may be left to copy: about a megabyte, whatever the file's page size.</summary>
    private long RestartFramesLeft => (1024 * 1024) / pageSize;

    public void Start() => _loop = Task.Run(LoopAsync, CancellationToken.None);

    private async Task LoopAsync()
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            await using var connection = await OpenAsync(_stopping.Token);
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                try
                {
                    await CheckpointAsync(connection, _stopping.Token);
                }
                catch (Exception exception) when (!_stopping.IsCancellationRequested)
                {
                    LogCheckpointFailed(logger, exception);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
    }

    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);

            // A reader of older frames holds the restart back; it is tried again a second later rather than
            // keeping every commit waiting. Without the size limit here too, the restarted log keeps its size.
            await using var command = connection.CreateCommand();
            command.CommandText = $"PRAGMA busy_timeout = 20; PRAGMA journal_size_limit = {walRestartBytes}";
            await command.ExecuteNonQueryAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>One pass of the checkpoint loop.</summary>
    public async Task CheckpointAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        var (_, frames, copied) = await CheckpointAsync(connection, "PASSIVE", cancellationToken);
        if (WalBytes <= walRestartBytes || (frames == copied && frames == _framesAtRestart))
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
        // every page copied since the last restart; flushed here, it has the last few left.
        FlushOpenFiles(_walPath, databasePath);
        await CheckpointAsync(connection, "PASSIVE", cancellationToken);

        await writeLock.WaitAsync(cancellationToken);
        try
        {
            var restart = await CheckpointAsync(connection, "RESTART", cancellationToken);
            if (restart.Busy)
            {
                LogRestartPostponed(logger, WalBytes);
            }
            else
            {
                _framesAtRestart = restart.Frames;
            }
        }
        finally
        {
            writeLock.Release();
        }
    }

    /// <summary>A checkpoint (PASSIVE or RESTART): whether a reader held it back, the frames in the log, and how many are now in the database.</summary>
    private static async Task<(bool Busy, long Frames, long Copied)> CheckpointAsync(SqliteConnection connection, string mode, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA wal_checkpoint({mode})";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? (reader.GetInt64(0) != 0, reader.GetInt64(1), reader.GetInt64(2)) : (false, 0, 0);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        if (_loop is not null)
        {
            await _loop;
        }

        _stopping.Dispose();
    }

    [LoggerMessage(EventId = LogEvents.CheckpointFailed, Level = LogLevel.Warning, Message = "Checkpointing the write-ahead log failed; trying again in a second")]
    private static partial void LogCheckpointFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = LogEvents.WalRestartPostponed, Level = LogLevel.Information, Message = "The write-ahead log ({Bytes} bytes) could not start over: a reader still uses older frames; trying again in a second")]
    private static partial void LogRestartPostponed(ILogger logger, long bytes);

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
}
