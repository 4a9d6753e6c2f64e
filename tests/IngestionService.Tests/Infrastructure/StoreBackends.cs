using IngestionService.Storage.Postgres;
using Npgsql;

namespace IngestionService.Tests.Infrastructure;

/// <summary>Where a contract test opens its stores: one database per test, any number of stores (processes, instances) on it.</summary>
public interface IStoreBackend : IAsyncDisposable
{
    Task<StoreUnderTest> OpenAsync();
}

/// <summary>The embedded store on a real SQLite file of the test's own.</summary>
public sealed class SqliteBackend : IStoreBackend
{
    private readonly TempDatabase _database = new();

    public Task<StoreUnderTest> OpenAsync() => StoreUnderTest.OpenSqliteAsync(_database.ConnectionString);

    public ValueTask DisposeAsync()
    {
        _database.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>The shared store on a database of the test's own on a real PostgreSQL server; each store plays one instance.</summary>
public sealed class PostgresBackend : IStoreBackend
{
    private readonly List<NpgsqlDataSource> _dataSources = [];

    // Made once however many instances open at the same moment: every instance must share one database.
    private readonly Lazy<Task<TempPostgresDatabase>> _database = new(TempPostgresDatabase.CreateAsync);

    /// <summary>The test's database, once the first store has been opened on it.</summary>
    public TempPostgresDatabase? Database => _database.IsValueCreated && _database.Value.IsCompletedSuccessfully ? _database.Value.Result : null;

    public Task<StoreUnderTest> OpenAsync() => OpenAsync(TimeSpan.FromSeconds(10));

    /// <summary>
    /// An instance with its own connection pool and the given lease; with <paramref name="proxy"/>, its
    /// connections go through it; <paramref name="statusQuietAfter"/> is how long its status sessions may go
    /// unused before they stop listening.
    /// </summary>
    public async Task<StoreUnderTest> OpenAsync(TimeSpan lease, bool initialize = true, BlackHoleProxy? proxy = null, TimeSpan? statusQuietAfter = null)
    {
        var database = await _database.Value;
        var connectionString = proxy is null ? database.ConnectionString
            : new NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port }.ConnectionString;
        var dataSource = PostgresQueueStore.CreateDataSource(connectionString);
        lock (_dataSources)
        {
            _dataSources.Add(dataSource);
        }

        return await StoreUnderTest.OpenPostgresAsync(dataSource, lease, initialize, statusQuietAfter);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var dataSource in _dataSources)
        {
            await dataSource.DisposeAsync();
        }

        // A database that was never made (no server: the test was skipped) has nothing to drop; awaiting
        // its failure again here would turn that skip into a failure.
        if (Database is { } database)
        {
            await database.DisposeAsync();
        }
    }
}
