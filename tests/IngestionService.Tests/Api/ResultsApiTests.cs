using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary><c>GET /ingestions/{id}/results</c> over real HTTP with the simulated upstream.</summary>
public sealed class ResultsApiTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ResultsArePagedInPositionOrderWithTheSimulatedBody()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "00:00:00.050", ["Upstream:SimulatedDelay"] = "00:00:00" });
        var ingestion = await app.SubmitAsync("MEDIUM", 5, 4, 3, 2, 1);
        await Eventually.ReturnsAsync(() => app.StatusAsync(ingestion), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the ingestion to complete");

        var first = await app.GetJsonAsync($"/ingestions/{ingestion}/results?limit=2");
        var second = await app.GetJsonAsync(first.GetProperty("next").GetString()!);
        var third = await app.GetJsonAsync(second.GetProperty("next").GetString()!);

        Assert.Equal([5, 4], Ids(first));
        Assert.Equal([3, 2], Ids(second));
        Assert.Equal([1], Ids(third));
        Assert.Equal(JsonValueKind.Null, third.GetProperty("next").ValueKind);
        Assert.Equal(ingestion, first.GetProperty("ingestion_id").GetGuid());

        var result = first.GetProperty("results")[0];
        Assert.Equal(0, result.GetProperty("position").GetInt32());
        Assert.Equal("succeeded", result.GetProperty("state").GetString());
        Assert.Equal("""{"id":5,"data":"processed"}""", result.GetProperty("body").GetString());
        Assert.Equal(1, result.GetProperty("attempts").GetInt32());
        Assert.Equal(JsonValueKind.Null, result.GetProperty("http_status").ValueKind);
        Assert.Equal(JsonValueKind.Null, result.GetProperty("error").ValueKind);
        Assert.False(result.GetProperty("body_truncated").GetBoolean());
        Assert.True(result.GetProperty("fetched_at").GetDateTimeOffset() >= (await app.StatusAsync(ingestion)).GetProperty("created_at").GetDateTimeOffset());
    }

    [Fact]
    public async Task AnIngestionWithNothingFetchedYetHasAnEmptyPage()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00", ["Upstream:SimulatedDelay"] = "01:00:00" });
        await app.SubmitAsync("HIGH", 1, 2, 3);
        var waiting = await app.SubmitAsync("LOW", 4);

        var page = await app.GetJsonAsync($"/ingestions/{waiting}/results");

        Assert.Empty(page.GetProperty("results").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, page.GetProperty("next").ValueKind);
    }

    [Theory]
    [InlineData("/ingestions/6a1b0a5e-0000-7000-8000-000000000000/results", HttpStatusCode.NotFound)]
    [InlineData("/ingestions/not-a-uuid/results", HttpStatusCode.NotFound)]
    [InlineData("/ingestions/{id}/results?limit=0", HttpStatusCode.BadRequest)]
    [InlineData("/ingestions/{id}/results?limit=1001", HttpStatusCode.BadRequest)]
    [InlineData("/ingestions/{id}/results?after=-1", HttpStatusCode.BadRequest)]
    [InlineData("/ingestions/{id}/results?after=two", HttpStatusCode.BadRequest)]
    public async Task BadLookUpsAreProblems(string path, HttpStatusCode expected)
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });
        var ingestion = await app.SubmitAsync("LOW", 1);

        using var response = await app.Client.GetAsync(new Uri(path.Replace("{id}", ingestion.ToString(), StringComparison.Ordinal), UriKind.Relative), Token);

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Token);
        Assert.False(string.IsNullOrEmpty(problem.GetProperty("title").GetString()));
    }

    private static int[] Ids(JsonElement page) => [.. page.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("id").GetInt32())];
}
