using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using IngestionService.Dashboard;
using IngestionService.Dispatch;
using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Storage.Postgres;
using IngestionService.Storage.Sqlite;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IngestionService.Hosting;

public static class HostingExtensions
{
    public const string DefaultUrl = "http://localhost:8000";

    /// <summary>
    /// Listens where the user said (<c>--urls</c>, <c>ASPNETCORE_URLS</c>), else on <c>PORT</c> on every
    /// interface as PaaS hosts expect, else on <see cref="DefaultUrl"/>.
    /// </summary>
    public static WebApplicationBuilder UseDefaultUrls(this WebApplicationBuilder builder)
    {
        if (!string.IsNullOrWhiteSpace(builder.Configuration[WebHostDefaults.ServerUrlsKey]))
        {
            return builder;
        }

        var port = builder.Configuration["PORT"];
        if (string.IsNullOrWhiteSpace(port))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }
        else if (int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number is > 0 and <= 65535)
        {
            builder.WebHost.UseUrls($"http://+:{number}");
        }
        else
        {
            throw new OptionsValidationException("PORT", typeof(string), [$"PORT must be a TCP port number between 1 and 65535 (got '{port}')."]);
        }

        return builder;
    }

    /// <summary>The endpoints' JSON (snake_case, source-generated) and the submit path.</summary>
    public static IServiceCollection AddIngestionApi(this IServiceCollection services)
    {
        services.AddOptions<IngestionOptions>().BindConfiguration(IngestionOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<IngestionOptions>, IngestionOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IngestionSubmitter>();
        services.AddSingleton<Backpressure>();
        services.AddSingleton<StatusCache>();
        services.ConfigureHttpJsonOptions(json =>
        {
            json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            json.SerializerOptions.TypeInfoResolverChain.Insert(0, IngestionJsonContext.Default);
        });
        return services;
    }

    /// <summary>The durable store named by <c>Storage:Provider</c>.</summary>
    public static IServiceCollection AddStorage(this IServiceCollection services)
    {
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<StorageOptions>, StorageOptionsValidator>();
        services.AddSingleton<IIngestionStore>(provider =>
        {
            var storage = provider.GetRequiredService<IOptions<StorageOptions>>().Value;
            return storage.IsPostgres
                ? ActivatorUtilities.CreateInstance<PostgresIngestionStore>(provider, provider.GetRequiredService<NpgsqlDataSource>())
                : ActivatorUtilities.CreateInstance<SqliteIngestionStore>(provider);
        });

        // One pool for the process, built only when PostgreSQL is chosen; the container disposes it after the store.
        services.AddSingleton(provider => PostgresIngestionStore.CreateDataSource(provider.GetRequiredService<IOptions<StorageOptions>>().Value.ConnectionString));
        return services;
    }

    /// <summary>The rate-limited loop that fetches ids from the upstream.</summary>
    public static IServiceCollection AddDispatcher(this IServiceCollection services)
    {
        services.AddSingleton<DispatchSignal>();
        services.AddSingleton<Dispatcher>();
        services.AddHostedService(provider => provider.GetRequiredService<Dispatcher>());

        // The host must wait for the window in flight to finish (Ingestion:ShutdownTimeout) before giving up.
        services.AddOptions<HostOptions>().Configure<IOptions<IngestionOptions>>((host, ingestion) =>
            host.ShutdownTimeout = ingestion.Value.ShutdownTimeout + TimeSpan.FromSeconds(5));
        return services;
    }

    /// <summary>Creates the schema and recovers what a stopped process left running, before the first request.</summary>
    public static async Task InitializeStorageAsync(this WebApplication app)
    {
        // Options are validated before anything touches the disk, so a bad setting fails with its own message.
        _ = app.Services.GetRequiredService<IOptions<StorageOptions>>().Value;
        await app.Services.GetRequiredService<IIngestionStore>().InitializeAsync(app.Lifetime.ApplicationStopping);
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(IngestAccepted))]
[JsonSerializable(typeof(IngestionStatus))]
[JsonSerializable(typeof(WindowLog))]
[JsonSerializable(typeof(QueueView))]
[JsonSerializable(typeof(IngestionList))]
[JsonSerializable(typeof(IngestionResults))]
internal sealed partial class IngestionJsonContext : JsonSerializerContext;
