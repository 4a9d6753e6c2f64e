using System.Net;
using System.Net.Http.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>The two endpoints the dashboard polls, over real HTTP: shapes, limits and bad limits.</summary>
public sealed class DashboardApiTests : IAsyncLifetime
{
    // A long window: the first window takes the first ids, and everything after it waits, at rest.
    private readonly IngestionApp _app = new(new() { ["Ingestion:Window"] = "00:10:00", ["Upstream:SimulatedDelay"] = "00:00:00" });

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    [Fact]
    public async Task TheQueueCountsWaitingIdsByPriorityAndDrainsHighFirst()
    {
        var first = await _app.SubmitAsync("LOW", 1, 2, 3); // takes the only window for the next ten minutes
        await Eventually.ReturnsAsync(() => _app.StatusAsync(first), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window");
        await _app.SubmitAsync("LOW", 4);
        await _app.SubmitAsync("MEDIUM", 5, 6, 7, 8);
        await _app.SubmitAsync("HIGH", 9, 10);

        var queue = await _app.GetJsonAsync("/queue");

        Assert.Equal(3, queue.GetProperty("batch_size").GetInt32());
        Assert.Equal(600, queue.GetProperty("window_seconds").GetDouble());
        Assert.Equal(7, queue.GetProperty("total_waiting").GetInt64());
        var now = queue.GetProperty("now").GetDateTime();
        var next = queue.GetProperty("next_admission_at").GetDateTime();
        Assert.InRange((next - now).TotalSeconds, 500, 600);
        var priorities = queue.GetProperty("priorities").EnumerateArray().ToList();
        Assert.Equal(["HIGH", "MEDIUM", "LOW"], priorities.Select(p => p.GetProperty("priority").GetString()));
        Assert.Equal([2L, 4L, 1L], priorities.Select(p => p.GetProperty("waiting").GetInt64()));
        Assert.Equal([2L, 6L, 7L], priorities.Select(p => p.GetProperty("waiting_up_to_here").GetInt64()));

        // 2 HIGH ids: the next window. 6 ids up to MEDIUM: two windows. 7 up to LOW: three windows.
        var drainedAt = priorities.Select(p => p.GetProperty("drained_at").GetDateTime()).ToList();
        Assert.Equal([next, next.AddMinutes(10), next.AddMinutes(20)], drainedAt);
        var drain = priorities.Select(p => p.GetProperty("drain_seconds").GetDouble()).ToList();
        Assert.InRange(drain[2] - drain[0], 1199.9, 1200.1);
    }

    [Fact]
    public async Task APriorityWithNothingWaitingHasNothingToDrainEvenBehindOthers()
    {
        var first = await _app.SubmitAsync("LOW", 1, 2, 3);
        await Eventually.ReturnsAsync(() => _app.StatusAsync(first), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window");
        await _app.SubmitAsync("HIGH", 4, 5, 6, 7);

        var low = (await _app.GetJsonAsync("/queue")).GetProperty("priorities")[2];

        Assert.Equal((0L, 4L, 0.0), (low.GetProperty("waiting").GetInt64(), low.GetProperty("waiting_up_to_here").GetInt64(), low.GetProperty("drain_seconds").GetDouble()));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, low.GetProperty("drained_at").ValueKind);
    }

    [Fact]
    public async Task AnEmptyQueueHasNothingToDrain()
    {
        var queue = await _app.GetJsonAsync("/queue");

        Assert.Equal(0, queue.GetProperty("total_waiting").GetInt64());
        Assert.All(queue.GetProperty("priorities").EnumerateArray(), p =>
        {
            Assert.Equal(0, p.GetProperty("waiting").GetInt64());
            Assert.Equal(0, p.GetProperty("drain_seconds").GetDouble());
            Assert.Equal(System.Text.Json.JsonValueKind.Null, p.GetProperty("drained_at").ValueKind);
        });
    }

    [Fact]
    public async Task RecentIngestionsAreNewestFirstWithProgressInIdsAndBatches()
    {
        var done = await _app.SubmitAsync("HIGH", 1, 2);
        await Eventually.ReturnsAsync(() => _app.StatusAsync(done), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window");
        var waiting = await _app.SubmitAsync("LOW", 3, 4, 5, 6, 7, 8, 9);

        var list = (await _app.GetJsonAsync("/ingestions")).GetProperty("ingestions").EnumerateArray().ToList();

        Assert.Equal([waiting.ToString(), done.ToString()], list.Select(i => i.GetProperty("ingestion_id").GetString()));
        var newest = list[0];
        Assert.Equal("LOW", newest.GetProperty("priority").GetString());
        Assert.Equal("yet_to_start", newest.GetProperty("status").GetString());
        Assert.EndsWith("Z", newest.GetProperty("created_at").GetString(), StringComparison.Ordinal);
        Assert.Equal((7, 0, 0), (newest.GetProperty("total_ids").GetInt32(), newest.GetProperty("started_ids").GetInt32(), newest.GetProperty("completed_ids").GetInt32()));
        Assert.Equal((3, 3, 0, 0), Batches(newest));
        var oldest = list[1];
        Assert.Equal("completed", oldest.GetProperty("status").GetString());
        Assert.Equal((2, 2, 2), (oldest.GetProperty("total_ids").GetInt32(), oldest.GetProperty("started_ids").GetInt32(), oldest.GetProperty("completed_ids").GetInt32()));
        Assert.Equal((1, 0, 0, 1), Batches(oldest));
    }

    [Fact]
    public async Task TheLimitCapsTheListOfIngestions()
    {
        for (var i = 1; i <= 4; i++)
        {
            await _app.SubmitAsync("MEDIUM", i);
        }

        var two = (await _app.GetJsonAsync("/ingestions?limit=2")).GetProperty("ingestions");
        var all = (await _app.GetJsonAsync("/ingestions")).GetProperty("ingestions");

        Assert.Equal(2, two.GetArrayLength());
        Assert.Equal(4, all.GetArrayLength());
        Assert.Equal(all[0].GetProperty("ingestion_id").GetString(), two[0].GetProperty("ingestion_id").GetString());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1001")]
    [InlineData("-1")]
    [InlineData("many")]
    public async Task TheListOfIngestionsRefusesABadLimit(string limit)
    {
        using var response = await _app.Client.GetAsync(new Uri($"/ingestions?limit={limit}", UriKind.Relative), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("limit", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheListOfIngestionsIsFilteredByStatusAndPriorityOverHttp()
    {
        var high = await _app.SubmitAsync("HIGH", 1);
        var low = await _app.SubmitAsync("LOW", 2);

        async Task<string?[]> ListAsync(string query) =>
            [.. (await _app.GetJsonAsync($"/ingestions?{query}")).GetProperty("ingestions").EnumerateArray().Select(i => i.GetProperty("ingestion_id").GetString())];

        Assert.Equal([high.ToString()], await ListAsync("priority=HIGH"));
        Assert.Equal([low.ToString()], await ListAsync("priority=LOW&limit=5"));
        Assert.Empty(await ListAsync("priority=MEDIUM"));
        Assert.Empty(await ListAsync("failed=true"));
        Assert.Equal([low.ToString(), high.ToString()], await ListAsync("failed=false"));
    }

    [Theory]
    [InlineData("status=done", "status", "yet_to_start, triggered, completed")]
    [InlineData("priority=high", "priority", "HIGH, MEDIUM, LOW")]
    [InlineData("failed=yes", "failed", "true or false")]
    public async Task TheListOfIngestionsRefusesABadFilterNamingIt(string query, string field, string expected)
    {
        using var response = await _app.Client.GetAsync(new Uri($"/ingestions?{query}", UriKind.Relative), TestContext.Current.CancellationToken);
        var problem = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(expected, problem.GetProperty("errors").GetProperty(field)[0].GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task BothEndpointsAreInTheOpenApiDocument()
    {
        var document = await _app.GetJsonAsync("/openapi/v1.json");

        var paths = document.GetProperty("paths");
        Assert.True(paths.GetProperty("/queue").TryGetProperty("get", out _));
        var ingestions = paths.GetProperty("/ingestions").GetProperty("get");
        Assert.Equal(["200", "400"], ingestions.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        var schemas = document.GetProperty("components").GetProperty("schemas");
        Assert.True(schemas.GetProperty("QueueView").GetProperty("properties").TryGetProperty("next_admission_at", out _));
        Assert.True(schemas.GetProperty("IngestionSummaryView").GetProperty("properties").TryGetProperty("batches", out _));
    }

    private static (int Total, int YetToStart, int Triggered, int Completed) Batches(System.Text.Json.JsonElement ingestion)
    {
        var batches = ingestion.GetProperty("batches");
        return (batches.GetProperty("total").GetInt32(), batches.GetProperty("yet_to_start").GetInt32(), batches.GetProperty("triggered").GetInt32(), batches.GetProperty("completed").GetInt32());
    }
}
