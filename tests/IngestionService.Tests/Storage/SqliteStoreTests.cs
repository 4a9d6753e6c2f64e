using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Storage.Sqlite;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>What only the embedded store does: its own write-ahead-log checkpoints, their bound, and durability levels.</summary>
public sealed class SqliteStoreTests : IDisposable
{
    private readonly TempDatabase _database = new();

    public void Dispose() => _database.Dispose();

    [Theory]
    [InlineData(SqliteSynchronous.Normal)]
    [InlineData(SqliteSynchronous.Full)]
    public async Task CommittedIngestionsReachTheDatabaseFileThroughTheBackgroundCheckpoint(SqliteSynchronous synchronous)
    {
        await using var store = await StoreUnderTest.OpenSqliteAsync(_database.ConnectionString, synchronous);
        var sizeBefore = new FileInfo(_database.FilePath).Length;

        // Commits only append to the log (SQLite's own checkpoints are off); the store's loop copies them in.
        var ids = Enumerable.Range(1, 1000).ToArray();
        var now = DateTimeOffset.UtcNow;
        await Task.WhenAll(Enumerable.Range(0, 200).Select(_ =>
            store.EnqueueAsync(new NewIngestion(Guid.CreateVersion7(now), Priority.Low, now, 3, ids), TestContext.Current.CancellationToken)));

        await Eventually.HoldsAsync(() => new FileInfo(_database.FilePath).Length > sizeBefore + (500 * 1024), TimeSpan.FromSeconds(10), "the checkpoint to copy the log into the database");
        Assert.Equal(200 * 1000, (await store.GetQueueDepthAsync(TestContext.Current.CancellationToken)).Low);
    }

    [Fact]
    public async Task TheWriteAheadLogStartsOverWhileCommitsKeepComing()
    {
        var token = TestContext.Current.CancellationToken;

        // The background loop is slowed to once an hour, so only the pass this test runs can restart the log.
        var store = await StoreUnderTest.OpenSqliteAsync(_database.ConnectionString, checkpointInterval: TimeSpan.FromHours(1), walRestartBytes: 64 * 1024);
        var checkpoints = store.Sqlite!.Checkpointer!;

        // Eight writers keep the group commit busy, so a passive checkpoint always leaves frames behind
        // and the log could never start over by itself.
        using var stop = new CancellationTokenSource();
        var ids = Enumerable.Range(1, 10).ToArray();
        var writers = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            var written = 0;
            while (!stop.IsCancellationRequested)
            {
                var now = DateTimeOffset.UtcNow;
                await store.EnqueueAsync(new NewIngestion(Guid.CreateVersion7(now), Priority.Low, now, 3, ids), token);
                written++;
            }

            return written;
        }, token)).ToArray();

        int written;
        try
        {
            await Eventually.HoldsAsync(() => checkpoints.WalBytes > 8 * 1024 * 1024, TimeSpan.FromSeconds(30), "the log to grow well past its limit");
            var grown = checkpoints.WalBytes;

            // After a checkpoint the next commit starts the log from the beginning and cuts the file back to
            // the limit. On a loaded machine a reader may still hold the log's end at that moment, and the
            // checkpoint then leaves frames behind: each round checkpoints again, as the checkpointer would.
            await using var checkpointer = await checkpoints.OpenAsync(token);
            await Eventually.ReturnsAsync(async () =>
            {
                await checkpoints.CheckpointAsync(checkpointer, token);
                await Task.Delay(100, token); // a few commits, the first of which may start the log over
                return checkpoints.WalBytes;
            }, bytes => bytes < grown / 4, TimeSpan.FromSeconds(30), "the log to start over");
        }
        finally
        {
            await stop.CancelAsync();
            written = (await Task.WhenAll(writers)).Sum();
            await store.DisposeAsync();
        }

        // Nothing committed was lost to the restart: a new store reads every ingestion back from the file.
        await using var reopened = await StoreUnderTest.OpenSqliteAsync(_database.ConnectionString);
        Assert.Equal(written * (long)ids.Length, (await reopened.GetQueueDepthAsync(token)).Low);
    }

    [Fact]
    public async Task IdsStoredBeforeTheyWereKeptInTimeOrderAreStillFoundAfterTheUpgrade()
    {
        var token = TestContext.Current.CancellationToken;

        // A database as version 3 left it: ids in .NET's mixed-endian byte order.
        var older = Guid.CreateVersion7(DateTimeOffset.UtcNow.AddMinutes(-1));
        var newer = Guid.CreateVersion7(DateTimeOffset.UtcNow);
        var requestHash = new byte[32];
        Directory.CreateDirectory(_database.Folder);
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection(_database.ConnectionString + ";Pooling=False"))
        {
            await connection.OpenAsync(token);
            await using var command = connection.CreateCommand();
            command.CommandText = string.Join('\n', SqliteSchema.Scripts().Where(script => script.Version <= 3).Select(script => script.Sql)) + """
                ;
                INSERT INTO ingestions (id, priority, created_at, batch_size, total, ids) VALUES ($older, 1, 1, 3, 2, x'0100000002000000'), ($newer, 1, 2, 3, 1, x'03000000');
                INSERT INTO idempotency_keys (key, request_hash, ingestion_id, expires_at) VALUES ('nightly', $hash, $newer, 9007199254740991);
                CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT '');
                INSERT INTO schema_migrations (version, name) VALUES (1, '001'), (2, '002'), (3, '003');
                """;
            command.Parameters.AddWithValue("$older", older.ToByteArray());
            command.Parameters.AddWithValue("$newer", newer.ToByteArray());
            command.Parameters.AddWithValue("$hash", requestHash);
            await command.ExecuteNonQueryAsync(token);
        }

        await using var store = await StoreUnderTest.OpenSqliteAsync(_database.ConnectionString);

        var olderRead = await store.GetIngestionAsync(older, token);
        var newerRead = await store.GetIngestionAsync(newer, token);
        Assert.Equal(new[] { 1, 2 }, olderRead?.Ids);
        Assert.Equal(new[] { 3 }, newerRead?.Ids);
        Assert.Equal(new EnqueueResult(newer, EnqueueOutcome.Replayed), await store.FindIdempotencyKeyAsync("nightly", requestHash, token));

        // Stored in network order, the ids now sort as their times do, which keeps new ones on the index's last page.
        Assert.Equal(1, _database.Scalar($"SELECT count(*) FROM ingestions WHERE id = x'{Convert.ToHexString(newer.ToByteArray(bigEndian: true))}'"));
        Assert.Equal(1, _database.Scalar("SELECT (SELECT id FROM ingestions WHERE created_at = 1) < (SELECT id FROM ingestions WHERE created_at = 2)"));
        Assert.Equal(0, _database.Scalar("SELECT count(*) FROM ingestions WHERE typeof(id) <> 'blob' OR length(id) <> 16"));
    }

    [Fact]
    public async Task ANewDatabaseFileGetsSmallPagesAndAnExistingOneKeepsItsOwn()
    {
        var token = TestContext.Current.CancellationToken;
        await using (await StoreUnderTest.OpenSqliteAsync(_database.ConnectionString))
        {
        }

        Assert.Equal(SqliteDatabase.NewFilePageSize, _database.Scalar("PRAGMA page_size"));
        Assert.Equal(1, _database.Scalar("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"));

        // A file made with SQLite's default pages (as every file before this change) is opened as it is.
        using var older = new TempDatabase();
        Directory.CreateDirectory(older.Folder);
        await using (var connection = new Microsoft.Data.Sqlite.SqliteConnection(older.ConnectionString + ";Pooling=False"))
        {
            await connection.OpenAsync(token);
            await using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA page_size = 4096; CREATE TABLE made_before (x INTEGER);";
            await command.ExecuteNonQueryAsync(token);
        }

        await using (var store = await StoreUnderTest.OpenSqliteAsync(older.ConnectionString))
        {
            var now = DateTimeOffset.UtcNow;
            await store.EnqueueAsync(new NewIngestion(Guid.CreateVersion7(now), Priority.Low, now, 3, [1, 2, 3]), token);
            Assert.Equal(3, (await store.GetQueueDepthAsync(token)).Low);
        }

        Assert.Equal(4096, older.Scalar("PRAGMA page_size"));
    }
}
