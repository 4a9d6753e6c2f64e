using System.Net;
using IngestionService.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace IngestionService.Tests.Api;

/// <summary>Configuration is checked before the service serves anything, and it listens where it is told.</summary>
public sealed class StartupTests
{
    [Theory]
    [InlineData("Ingestion:BatchSize", "0")]
    [InlineData("Ingestion:Window", "00:00:00")]
    [InlineData("Ingestion:Window", "-00:00:05")]
    [InlineData("Ingestion:MaxIdsPerRequest", "0")]
    [InlineData("Upstream:SimulatedDelay", "-00:00:01")]
    [InlineData("Storage:Provider", "Oracle")]
    [InlineData("Upstream:Mode", "Http")] // without Upstream:BaseUrl
    [InlineData("Upstream:MaxAttempts", "0")]
    [InlineData("Upstream:Timeout", "00:00:00")]
    [InlineData("Ingestion:MaxBacklog", "00:00:01")]
    [InlineData("Ingestion:IdempotencyKeyLifetime", "00:00:01")]
    [InlineData("Ingestion:AcceptedStatusCode", "204")]
    [InlineData("Ingestion:Retention", "00:00:30")]
    [InlineData("Notifications:SigningSecret", "not-a-whsec-secret")]
    [InlineData("Notifications:SigningSecret", "whsec_c2hvcnQ=")] // 5 bytes: too short to sign with
    [InlineData("Notifications:Url", "ftp://example.com/hook")]
    [InlineData("Notifications:Url", "http://127.0.0.1:9/hook")]
    [InlineData("Notifications:Url", "http://localhost:9/hook")]
    [InlineData("Notifications:MaxAge", "00:00:00")]
    [InlineData("Notifications:Timeout", "00:00:00")]
    [InlineData("Notifications:MaxConcurrentDeliveries", "0")]
    public async Task ABadSettingStopsTheStartWithAMessageNamingItsKey(string key, string value)
    {
        await using var app = new IngestionApp(new() { [key] = value });

        var failure = Assert.ThrowsAny<Exception>(() => app.Client);

        var validation = failure as OptionsValidationException ?? failure.InnerException as OptionsValidationException;
        Assert.NotNull(validation);
        Assert.Contains(key, validation.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARetentionShorterThanTheIdempotencyKeyLifetimeIsRefusedNamingBoth()
    {
        // The default key lifetime is a day: a key would outlive the ingestion it answers with.
        await using var app = new IngestionApp(new() { ["Ingestion:Retention"] = "01:00:00" });

        var failure = Assert.ThrowsAny<Exception>(() => app.Client);

        var validation = failure as OptionsValidationException ?? failure.InnerException as OptionsValidationException;
        Assert.NotNull(validation);
        Assert.Contains("Ingestion:IdempotencyKeyLifetime (1.00:00:00) must not be longer than Ingestion:Retention (01:00:00)", validation.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Ingestion:Window", "00:00:00", "Configuration error: Ingestion:Window must be a positive duration")]
    [InlineData("Ingestion:Window", "soon", "Configuration error: Ingestion:Window must be a duration such as 00:00:05 (hh:mm:ss) (got 'soon').")]
    [InlineData("Upstream:Mode", "Htp", "Configuration error: Upstream:Mode must be one of Simulated, Http (got 'Htp').")]
    public async Task ABadSettingEndsTheProcessWithOneLineNamingTheKeyAndExitCode1(string key, string value, string line)
    {
        using var database = new TempDatabase();

        var (exitCode, output) = await ServiceProcess.RunToExitAsync(
            new Dictionary<string, string> { [key] = value, ["Storage:ConnectionString"] = database.ConnectionString },
            "--urls", "http://127.0.0.1:0");

        Assert.Equal(1, exitCode);
        Assert.StartsWith(line, Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task APortInUseEndsTheProcessWithOneLineNamingTheAddressAndExitCode1()
    {
        using var database = new TempDatabase();
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var address = $"http://127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";

        var (exitCode, output) = await ServiceProcess.RunToExitAsync(new Dictionary<string, string> { ["Storage:ConnectionString"] = database.ConnectionString }, "--urls", address);

        Assert.Equal(1, exitCode);
        var only = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(address, only, StringComparison.Ordinal);
        Assert.Contains("address already in use", only, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartedFromAnotherFolderItServesTheDashboardAndSaysWhatIsInForce()
    {
        using var database = new TempDatabase();
        var elsewhere = Directory.CreateTempSubdirectory("ingestion-elsewhere-");
        try
        {
            await using var service = await ServiceProcess.StartAsync(database.ConnectionString, workingDirectory: elsewhere.FullName);

            using var page = await service.Client.GetAsync(new Uri("/", UriKind.Relative), TestContext.Current.CancellationToken);

            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            await Eventually.HoldsAsync(() => service.Output.Contains("Ingestion service ready", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the start-up line");
            var line = service.Output.Split('\n').Single(l => l.Contains("Ingestion service ready", StringComparison.Ordinal));
            Assert.Contains($"store SQLite {database.FilePath}", line, StringComparison.Ordinal);
            Assert.Contains("upstream Simulated; limit 3 ids per 5 s", line, StringComparison.Ordinal);
            Assert.Contains($"dashboard {service.BaseAddress}", line, StringComparison.Ordinal);
            Assert.Contains($"{service.BaseAddress}docs", line, StringComparison.Ordinal);
            Assert.DoesNotContain("WebRootPath", service.Output, StringComparison.Ordinal);
        }
        finally
        {
            elsewhere.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("200", HttpStatusCode.OK)]
    [InlineData("201", HttpStatusCode.Created)]
    public async Task AClientThatInsistsOnAnotherSuccessCodeCanHaveItWithTheSameBodyAndLocation(string setting, HttpStatusCode expected)
    {
        await using var app = new IngestionApp(new() { ["Ingestion:AcceptedStatusCode"] = setting, ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });

        using var response = await app.PostIngestAsync("""{"ids": [1, 2], "priority": "HIGH"}""");
        var id = (await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<System.Text.Json.JsonElement>(response.Content, TestContext.Current.CancellationToken)).GetProperty("ingestion_id").GetGuid();

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal($"/status/{id}", response.Headers.Location?.OriginalString);
        Assert.Equal(HttpStatusCode.OK, (await app.Client.GetAsync(response.Headers.Location, TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task APortFromThePortVariableIsUsedWhenNoUrlsAreGiven()
    {
        using var database = new TempDatabase();
        await using var service = await ServiceProcess.StartAsync(database.ConnectionString, portFromEnvironment: true);

        using var response = await service.Client.GetAsync(new Uri("/windows", UriKind.Relative), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains($"http://[::]:{service.BaseAddress.Port}", service.Output, StringComparison.Ordinal);
    }
}
