using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Storage.Sqlite;
using IngestionService.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace IngestionService.Tests.Storage;

/// <summary>What only the embedded store does: its own write-ahead-log checkpoints and durability levels.</summary>
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
}
