using IngestionService.Storage;
using IngestionService.Storage.Sqlite;
using IngestionService.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace IngestionService.Tests.Storage;

/// <summary>The storage contract on the embedded SQLite store: a real file of its own.</summary>
public sealed class SqliteStoreContractTests : StoreContractTests
{
    private readonly TempDatabase _database = new();

    protected override async Task<IIngestionStore> CreateStoreAsync()
    {
        var store = new SqliteIngestionStore(Options.Create(new StorageOptions { ConnectionString = _database.ConnectionString }), NullLogger<SqliteIngestionStore>.Instance);
        await store.InitializeAsync(Token);
        return store;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        _database.Dispose();
    }
}
