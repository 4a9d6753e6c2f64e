using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>The rate limit at run time over real HTTP: every answer, what the queue, the status and the metrics say, and the admin key.</summary>
public sealed class LimitsApiTests
{
    private const string Key = "operator-key-0123456789";

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task APutOverridesTheLimitEverywhereAndADeleteReturnsToTheConfiguration()
    {
        // A long window: the first id runs at once, the rest wait, and their estimates follow the limit.
        await using var app = new IngestionApp(new() { ["Ingestion:BatchSize"] = "2", ["Ingestion:Window"] = "00:10:00", ["Upstream:SimulatedDelay"] = "00:00:00" });
        var initial = await app.GetJsonAsync("/limits");
        await app.SubmitAsync("HIGH", 1, 2);
        var waiting = await app.SubmitAsync("LOW", 3, 4, 5, 6, 7);

        using var put = await SendAsync(app, HttpMethod.Put, """{"batch_size": 3, "window": "00:20:00"}""");
        var set = await put.Content.ReadFromJsonAsync<JsonElement>(Token);
        var queue = await app.GetJsonAsync("/queue");
        var status = await app.StatusAsync(waiting);
        var gauges = (app.LatestMeasurement<int>("ingestion.limiter.batch_size"), app.LatestMeasurement<double>("ingestion.limiter.window"));
        using var delete = await SendAsync(app, HttpMethod.Delete, null);
        var reset = await delete.Content.ReadFromJsonAsync<JsonElement>(Token);
        using var deleteAgain = await SendAsync(app, HttpMethod.Delete, null);

        Assert.Equal(("configuration", 2, "00:10:00", JsonValueKind.Null, 0), (initial.GetProperty("source").GetString(), initial.GetProperty("batch_size").GetInt32(), initial.GetProperty("window").GetString(), initial.GetProperty("changed_at").ValueKind, initial.GetProperty("history").GetArrayLength()));
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal(("override", 3, "00:20:00"), (set.GetProperty("source").GetString(), set.GetProperty("batch_size").GetInt32(), set.GetProperty("window").GetString()));
        Assert.Equal((2, "00:10:00"), (set.GetProperty("configured").GetProperty("batch_size").GetInt32(), set.GetProperty("configured").GetProperty("window").GetString()));
        Assert.Equal((3, 1200.0), (queue.GetProperty("batch_size").GetInt32(), queue.GetProperty("window_seconds").GetDouble()));

        // Five LOW ids wait behind nothing; at 3 per 20 minutes the second batch of two (3, 4 | 5, 6 | 7) starts 20 minutes after the first.
        var starts = status.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("estimated_start_at").GetDateTime()).ToList();
        Assert.Equal(TimeSpan.FromMinutes(20), starts[2] - starts[0]);
        Assert.Equal((3, 1200.0), gauges);

        Assert.Equal((HttpStatusCode.OK, "configuration", 2), (delete.StatusCode, reset.GetProperty("source").GetString(), reset.GetProperty("batch_size").GetInt32()));
        var history = reset.GetProperty("history").EnumerateArray().Select(h => (h.GetProperty("source").GetString(), h.GetProperty("batch_size").GetInt32(), h.GetProperty("window").GetString())).ToList();
        Assert.Equal([("configuration", 2, "00:10:00"), ("override", 3, "00:20:00")], history);
        Assert.Equal(2, (await deleteAgain.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("history").GetArrayLength()); // nothing to undo: nothing stored
    }

    [Theory]
    [InlineData("""{"batch_size": 0, "window": "00:00:05"}""", "batch_size", "between 1 and 1000")]
    [InlineData("""{"batch_size": 1001, "window": "00:00:05"}""", "batch_size", "between 1 and 1000")]
    [InlineData("""{"batch_size": "3", "window": "00:00:05"}""", "batch_size", "whole number")]
    [InlineData("""{"batch_size": 2.5, "window": "00:00:05"}""", "batch_size", "whole number")]
    [InlineData("""{"window": "00:00:05"}""", "batch_size", "is required")]
    [InlineData("""{"batch_size": 3, "window": "00:00:00"}""", "window", "positive duration")]
    [InlineData("""{"batch_size": 3, "window": "5"}""", "window", "duration string")]
    [InlineData("""{"batch_size": 3, "window": 5}""", "window", "got the number 5 (write seconds as")]
    [InlineData("""{"batch_size": 3, "window": "5s"}""", "window", "got \"5s\"")]
    [InlineData("""{"batch_size": 3, "window": "2.00:00:00"}""", "window", "at most one day")]
    [InlineData("""{"batch_size": 3, "window": "00:00:00.0005"}""", "window", "whole milliseconds")]
    [InlineData("""{"batch_size": 3, "window": "00:10:00"}""", "window", "Ingestion:MaxBacklog")]
    [InlineData("""{"batch_size": 3}""", "window", "is required")]
    [InlineData("""{"batch_size": 3, "window": "00:00:05", "windw": 1}""", "windw", "did you mean 'window'?")]
    public async Task ABadLimitIsRefusedNamingTheFieldAndChangesNothing(string body, string field, string expected)
    {
        await using var app = new IngestionApp(new() { ["Ingestion:MaxBacklog"] = "00:05:00" });

        using var response = await SendAsync(app, HttpMethod.Put, body);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Token);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains(expected, problem.GetProperty("errors").GetProperty(field)[0].GetString(), StringComparison.Ordinal);
        Assert.Equal("configuration", (await app.GetJsonAsync("/limits")).GetProperty("source").GetString());
    }

    [Fact]
    public async Task WithAnAdminKeyChangesNeedItAndReadingStaysOpen()
    {
        await using var app = new IngestionApp(new() { ["Admin:ApiKey"] = Key });

        using var get = await app.Client.GetAsync(new Uri("/limits", UriKind.Relative), Token);
        using var put = await SendAsync(app, HttpMethod.Put, """{"batch_size": 3, "window": "00:00:06"}""");
        using var delete = await SendAsync(app, HttpMethod.Delete, null);
        using var allowed = await SendAsync(app, HttpMethod.Put, """{"batch_size": 3, "window": "00:00:06"}""", $"Bearer {Key}");

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.OK), (get.StatusCode, put.StatusCode, delete.StatusCode, allowed.StatusCode));
    }

    [Fact]
    public async Task TheThreeCallsAreInTheOpenApiDocumentUnderQueueControl()
    {
        await using var app = new IngestionApp();

        var limits = (await app.GetJsonAsync("/openapi/v1.json")).GetProperty("paths").GetProperty("/limits");

        Assert.Equal(["delete", "get", "put"], limits.EnumerateObject().Select(m => m.Name).Where(m => m is "get" or "put" or "delete").Order());
        Assert.Equal("Queue control", limits.GetProperty("put").GetProperty("tags")[0].GetString());
        Assert.Equal(["200", "400", "401", "403", "413", "415", "422"], limits.GetProperty("put").GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
    }

    private static async Task<HttpResponseMessage> SendAsync(IngestionApp app, HttpMethod method, string? json, string? authorization = null)
    {
        using var request = new HttpRequestMessage(method, new Uri("/limits", UriKind.Relative));
        if (json is not null)
        {
            request.Content = new StringContent(json, Encoding.UTF8, "application/json");
        }

        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return await app.Client.SendAsync(request, Token);
    }
}
