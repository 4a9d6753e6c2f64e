using IngestionService.Storage.Postgres;
using IngestionService.Storage.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IngestionService.Storage;

public static class StorageExtensions
{
    /// <summary>
    /// The durable store named by <c>Storage:Provider</c>, as its two sides: the write path
    /// (<see cref="IQueueStore"/>) and the read side (<see cref="IQueueReader"/>). Only the chosen backend's
    /// types are ever built.
    /// </summary>
    public static IServiceCollection AddStorage(this IServiceCollection services)
    {
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<StorageOptions>, StorageOptionsValidator>();
        services.AddSingleton<IValidateOptions<Ingest.IngestionOptions>, PostgresLeaseValidator>();
        services.TryAddSingleton(TimeProvider.System); // the embedded store's clock; a shared store uses the database's

        services.AddSingleton<SqliteDatabase>();
        services.AddSingleton<SqliteQueueStore>();
        services.AddSingleton<SqliteQueueReader>();

        // One pool for the process, built only when PostgreSQL is chosen; the container disposes it after the stores.
        services.AddSingleton(provider => PostgresQueueStore.CreateDataSource(provider.GetRequiredService<IOptions<StorageOptions>>().Value.ConnectionString));
        services.AddSingleton<PostgresQueueStore>();
        services.AddSingleton<PostgresStatusReads>();
        services.AddSingleton<PostgresQueueReader>();

        services.AddSingleton<IQueueStore>(provider => IsPostgres(provider)
            ? provider.GetRequiredService<PostgresQueueStore>()
            : provider.GetRequiredService<SqliteQueueStore>());
        services.AddSingleton<IQueueReader>(provider => IsPostgres(provider)
            ? provider.GetRequiredService<PostgresQueueReader>()
            : provider.GetRequiredService<SqliteQueueReader>());
        services.AddSingleton<SqliteOutboxStore>();
        services.AddSingleton<PostgresOutboxStore>();
        services.AddSingleton<IOutboxStore>(provider => IsPostgres(provider)
            ? provider.GetRequiredService<PostgresOutboxStore>()
            : provider.GetRequiredService<SqliteOutboxStore>());
        services.AddSingleton<StoreWrites>();
        services.AddExceptionHandler<Hosting.StoreRefusedHandler>(); // a full disk answers 503, not 500
        services.AddSingleton<PostgresEventFanout>();
        services.AddHostedService(provider => provider.GetRequiredService<PostgresEventFanout>()); // returns at once on SQLite
        services.AddHostedService<PostgresWakeUps>(); // returns at once on SQLite
        services.AddSingleton<RetentionSweeper>();
        services.AddHostedService(provider => provider.GetRequiredService<RetentionSweeper>());
        return services;
    }

    /// <summary>Creates the schema and recovers what a stopped process left running, before the first request.</summary>
    public static async Task InitializeStorageAsync(this WebApplication app)
    {
        // Options are validated before anything touches the disk, so a bad setting fails with its own message.
        _ = app.Services.GetRequiredService<IOptions<StorageOptions>>().Value;
        await app.Services.GetRequiredService<IQueueStore>().InitializeAsync(app.Lifetime.ApplicationStopping);
    }

    private static bool IsPostgres(IServiceProvider provider) => provider.GetRequiredService<IOptions<StorageOptions>>().Value.IsPostgres;
}
