using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>What a client and an operator see of the retention over real HTTP: the 404 of a purged ingestion, and the store's size.</summary>
public sealed class RetentionApiTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AnUnknownIdCreatedLongerAgoThanTheRetentionIsSaidToHaveProbablyBeenPurged()
    {
        await using var app = new IngestionApp();
        var old = Guid.CreateVersion7(DateTimeOffset.UtcNow.AddDays(-30));

        var purged = await ProblemAsync(app, old);
        var unknown = await ProblemAsync(app, Guid.CreateVersion7());
        var notVersion7 = await ProblemAsync(app, Guid.Parse("ffffffff-ffff-4fff-bfff-ffffffffffff")); // its "time" is past year 9999

        Assert.Contains("longer ago than the retention (7 days, Ingestion:Retention): it may have finished and been deleted", purged, StringComparison.Ordinal);
        Assert.Contains("Finished ingestions are kept for 7 days (Ingestion:Retention), then deleted.", unknown, StringComparison.Ordinal);
        Assert.Contains("Finished ingestions are kept for 7 days", notVersion7, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheStoreSizeIsAGauge()
    {
        await using var app = new IngestionApp();
        await app.SubmitAsync("HIGH", 1);

        var bytes = await Eventually.ReturnsAsync(() => Task.FromResult(app.LatestMeasurement<long>("ingestion.store.size") ?? 0), b => b > 0, TimeSpan.FromSeconds(10), "the monitor to sample the store's size");

        Assert.True(bytes >= 4096, $"{bytes} bytes");
    }

    private static async Task<string> ProblemAsync(IngestionApp app, Guid id)
    {
        using var response = await app.Client.GetAsync(new Uri($"/status/{id}", UriKind.Relative), Token);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("detail").GetString()!;
    }
}
