using Microsoft.Extensions.DependencyInjection;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// The real service in this process, on real Kestrel over loopback HTTP and a real SQLite file of its
/// own. Settings override <c>appsettings.json</c> like environment variables would.
/// </summary>
public class IngestionApp : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;

    public IngestionApp(Dictionary<string, string?>? settings = null)
    {
        _settings = settings ?? [];
        // Not UseKestrel(0): the factory then edits the server's addresses while a minimal-API app may
        // already be binding them, and now and then throws "IServerAddressesFeature.Addresses cannot be
        // modified after the server has started" (https://github.com/dotnet/aspnetcore/pull/67714).
        // A free port is asked for through the app's own --urls setting instead.
        UseKestrel();
    }

    /// <summary>The service on <paramref name="database"/> instead of a SQLite file, with these settings besides.</summary>
    public static IngestionApp OnPostgres(TempPostgresDatabase database, Dictionary<string, string?> settings)
    {
        ArgumentNullException.ThrowIfNull(database);
        settings = new(settings) { ["Storage:Provider"] = "Postgres", ["Storage:ConnectionString"] = database.ConnectionString };
        return new IngestionApp(settings);
    }

    public TempDatabase Database { get; } = new();

    /// <summary>Changes to the service's registrations, made after its own (an in-memory span exporter, say).</summary>
    public Action<IServiceCollection>? TestServices { get; init; }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseSetting(WebHostDefaults.ServerUrlsKey, "http://127.0.0.1:0");
        builder.UseSetting("Storage:ConnectionString", Database.ConnectionString);
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        if (TestServices is { } configure)
        {
            builder.ConfigureServices(configure);
        }
    }

    /// <summary>A client for the running server; the server starts on first use.</summary>
    public HttpClient Client => _client ??= CreateClient();

    private HttpClient? _client;

    public async Task<HttpResponseMessage> PostIngestAsync(string json, string contentType = "application/json")
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8);
        content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
        return await Client.PostAsync(new Uri("/ingest", UriKind.Relative), content, TestContext.Current.CancellationToken);
    }

    public async Task<Guid> SubmitAsync(string priority, params int[] ids)
    {
        using var response = await Client.PostAsJsonAsync("/ingest", new { ids, priority }, TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
        return body.GetProperty("ingestion_id").GetGuid();
    }

    public async Task<JsonElement> GetJsonAsync(string path)
    {
        using var response = await Client.GetAsync(new Uri(path, UriKind.Relative), TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
    }

    public Task<JsonElement> StatusAsync(Guid ingestionId) => GetJsonAsync($"/status/{ingestionId}");

    /// <summary>
    /// The latest value of one of this service's own instruments. Read from its meter factory, not from
    /// <c>/metrics</c>: in a test process every service's exporter also sees the other services' meters of the same name.
    /// </summary>
    public T? LatestMeasurement<T>(string instrument, params (string Key, string Value)[] tags)
        where T : struct
    {
        _ = Client; // the server is built
        using var collector = new Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<T>(
            Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), IngestionService.Observability.IngestionMetrics.MeterName, instrument);
        collector.RecordObservableInstruments();
        return collector.GetMeasurementSnapshot()
            .LastOrDefault(m => tags.All(tag => m.Tags.TryGetValue(tag.Key, out var value) && Equals(value, tag.Value)))?.Value;
    }

    public override async ValueTask DisposeAsync()
    {
        _client?.Dispose();
        await base.DisposeAsync();
        Database.Dispose();
        GC.SuppressFinalize(this);
    }
}
