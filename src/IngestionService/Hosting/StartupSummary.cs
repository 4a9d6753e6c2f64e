using System.Globalization;
using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Storage;
using IngestionService.Upstream;
using Microsoft.Extensions.Options;

namespace IngestionService.Hosting;

/// <summary>Where the service keeps its files, and the one line it logs once it listens: what is in force.</summary>
public static partial class StartupSummary
{
    /// <summary>
    /// The builder's options: started from another folder than the project's (the binary run by path),
    /// the dashboard's files are taken from beside the binary instead of being missing.
    /// </summary>
    public static WebApplicationOptions BuilderOptions(string[] args)
    {
        var here = Path.Combine(Directory.GetCurrentDirectory(), "wwwroot");
        var beside = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        return new WebApplicationOptions
        {
            Args = args,
            WebRootPath = !Directory.Exists(here) && Directory.Exists(beside) ? beside : null,
        };
    }

    /// <summary>Logs, once the server listens, the store and its database, the upstream, the limit, and the addresses to open.</summary>
    public static WebApplication LogWhatIsInForce(this WebApplication app)
    {
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("IngestionService");
            if (!logger.IsEnabled(LogLevel.Information))
            {
                return;
            }

            var storage = app.Services.GetRequiredService<IOptions<StorageOptions>>().Value;
            var ingestion = app.Services.GetRequiredService<IOptions<IngestionOptions>>().Value;
            var upstream = app.Services.GetRequiredService<IOptions<UpstreamOptions>>().Value;
            var address = (app.Urls.FirstOrDefault() ?? HostingExtensions.DefaultUrl).TrimEnd('/');
            var store = Store(storage);
            var upstreamText = upstream.Mode == UpstreamMode.Http ? $"Http {upstream.BaseUrl}" : "Simulated";
            var limit = string.Create(CultureInfo.InvariantCulture, $"{ingestion.BatchSize} ids per {ingestion.Window.TotalSeconds:0.###} s");
            var dashboard = $"{address}/";
            var docs = $"{address}/docs";
            var metrics = $"{address}/metrics";
            LogStarted(logger, store, upstreamText, limit, dashboard, docs, metrics);
        });
        return app;
    }

    /// <summary>The store and where its data is: the SQLite file's full path, or the PostgreSQL server and database (never a password).</summary>
    private static string Store(StorageOptions storage)
    {
        if (storage.IsPostgres)
        {
            var postgres = new Npgsql.NpgsqlConnectionStringBuilder(storage.ConnectionString);
            return $"PostgreSQL {postgres.Host}:{postgres.Port}/{postgres.Database}";
        }

        var source = new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(storage.ConnectionString).DataSource;
        return $"SQLite {(string.IsNullOrEmpty(source) || source == ":memory:" ? "in memory" : Path.GetFullPath(source))}";
    }

    [LoggerMessage(EventId = LogEvents.Started, Level = LogLevel.Information, Message = "Ingestion service ready: store {Store}; upstream {Upstream}; limit {Limit}; dashboard {Dashboard}, API reference {Docs}, metrics {Metrics}")]
    private static partial void LogStarted(ILogger logger, string store, string upstream, string limit, string dashboard, string docs, string metrics);
}
