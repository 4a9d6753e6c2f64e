using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Storage.Sqlite;
using IngestionService.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

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
        await using var store = new SqliteIngestionStore(
            Options.Create(new StorageOptions { ConnectionString = _database.ConnectionString, Synchronous = synchronous }),
            NullLogger<SqliteIngestionStore>.Instance);
        await store.InitializeAsync(TestContext.Current.CancellationToken);
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
        var options = Options.Create(new StorageOptions { ConnectionString = _database.ConnectionString });

        // The background loop is slowed to once an hour, so only the pass this test runs can restart the log.
        var store = new SqliteIngestionStore(options, NullLogger<SqliteIngestionStore>.Instance)
        {
            WalRestartBytes = 64 * 1024,
            CheckpointInterval = TimeSpan.FromHours(1),
        };
        await store.InitializeAsync(token);

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
            await Eventually.HoldsAsync(() => store.WalBytes > 8 * 1024 * 1024, TimeSpan.FromSeconds(30), "the log to grow well past its limit");
            var grown = store.WalBytes;
            await using (var checkpointer = await store.OpenCheckpointerAsync(token))
            {
                await store.CheckpointAsync(checkpointer, token);
            }

            // The next commit starts the log from the beginning and cuts the file back to the limit.
            await Eventually.HoldsAsync(() => store.WalBytes < grown / 4, TimeSpan.FromSeconds(10), "the log to start over");
        }
        finally
        {
            await stop.CancelAsync();
            written = (await Task.WhenAll(writers)).Sum();
            await store.DisposeAsync();
        }

        // Nothing committed was lost to the restart: a new store reads every ingestion back from the file.
        await using var reopened = new SqliteIngestionStore(options, NullLogger<SqliteIngestionStore>.Instance);
        await reopened.InitializeAsync(token);
        Assert.Equal(written * (long)ids.Length, (await reopened.GetQueueDepthAsync(token)).Low);
    }
}
