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
    public async Task ABadSettingStopsTheStartWithAMessageNamingItsKey(string key, string value)
    {
        await using var app = new IngestionApp(new() { [key] = value });

        var failure = Assert.ThrowsAny<Exception>(() => app.Client);

        var validation = failure as OptionsValidationException ?? failure.InnerException as OptionsValidationException;
        Assert.NotNull(validation);
        Assert.Contains(key, validation.Message, StringComparison.Ordinal);
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
