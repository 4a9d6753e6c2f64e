using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>
/// What a client that retries sees over real HTTP: idempotent submission with <c>Idempotency-Key</c>, and
/// backpressure (<c>Ingestion:MaxBacklog</c>) answering 429 with a Retry-After it can act on.
/// </summary>
public sealed class ClientRetryTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TheSameKeyAndRequestAnswerTheFirstIngestionAndCreateNothingNew()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });

        using var first = await PostAsync(app, """{"ids": [1, 2, 3], "priority": "HIGH"}""", "order-42");
        using var again = await PostAsync(app, """{ "priority":"HIGH",  "ids":[1,2,3] }""", "order-42");
        var ingestions = await app.GetJsonAsync("/ingestions");

        Assert.Equal((HttpStatusCode.Accepted, HttpStatusCode.Accepted), (first.StatusCode, again.StatusCode));
        var id = await IdOf(first);
        Assert.Equal(id, await IdOf(again));
        Assert.Equal(first.Headers.Location, again.Headers.Location);
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal([id], ingestions.GetProperty("ingestions").EnumerateArray().Select(i => i.GetProperty("ingestion_id").GetGuid()));
    }

    [Fact]
    public async Task TheSameKeyWithAnotherRequestIsRefusedAndStoresNothing()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });
        using var first = await PostAsync(app, """{"ids": [1, 2, 3], "priority": "HIGH"}""", "order-43");

        using var other = await PostAsync(app, """{"ids": [1, 2, 4], "priority": "HIGH"}""", "order-43");
        var problem = await other.Content.ReadFromJsonAsync<JsonElement>(Token);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        Assert.Equal("application/problem+json", other.Content.Headers.ContentType?.MediaType);
        Assert.Contains(await IdOf(first) + "", problem.GetProperty("errors").GetProperty("Idempotency-Key")[0].GetString(), StringComparison.Ordinal);
        Assert.StartsWith("Nothing was stored", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Single((await app.GetJsonAsync("/ingestions")).GetProperty("ingestions").EnumerateArray());
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("tab\tinside")]
    [InlineData("x256")]
    public async Task AMalformedKeyIsA400(string key)
    {
        await using var app = new IngestionApp();
        key = key == "x256" ? new string('x', 256) : key;

        using var request = new HttpRequestMessage(HttpMethod.Post, "/ingest") { Content = JsonContent("""{"ids": [1], "priority": "LOW"}""") };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        using var response = await app.Client.SendAsync(request, Token);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Token);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("Invalid Idempotency-Key", problem.GetProperty("title").GetString());
        Assert.Empty((await app.GetJsonAsync("/ingestions")).GetProperty("ingestions").EnumerateArray());
    }

    [Fact]
    public async Task ABacklogLongerThanMaxBacklogIsRefusedWithARetryAfterThatBringsItBackUnder()
    {
        // One window an hour: the first window takes 3 ids at once; 6 more wait 1 h for the next admission,
        // then take 2 more windows: 3 h in all, exactly MaxBacklog. One more id would need a fourth hour.
        await using var app = new IngestionApp(new()
        {
            ["Ingestion:Window"] = "01:00:00",
            ["Ingestion:MaxBacklog"] = "03:00:00",
            ["Upstream:SimulatedDelay"] = "01:00:00",
            ["Ingestion:ShutdownTimeout"] = "00:00:00",
        });
        await app.SubmitAsync("LOW", 1, 2, 3);
        await Eventually.ReturnsAsync(() => app.GetJsonAsync("/queue"), q => q.GetProperty("total_waiting").GetInt64() == 0, TimeSpan.FromSeconds(10), "the first window to take the ids");
        using var accepted = await PostAsync(app, """{"ids": [4, 5, 6, 7, 8, 9], "priority": "LOW"}""", "nightly-batch");

        using var refused = await PostAsync(app, """{"ids": [10], "priority": "LOW"}""");
        using var replayed = await PostAsync(app, """{"ids": [4, 5, 6, 7, 8, 9], "priority": "LOW"}""", "nightly-batch");
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>(Token);
        using var tooLarge = await PostAsync(app, """{"ids": [1,2,3,4,5,6,7,8,9,10], "priority": "HIGH"}""");

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.InRange(refused.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(3590), TimeSpan.FromSeconds(3600));
        Assert.Contains("Ingestion:MaxBacklog (10800 s)", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("https://tools.ietf.org/html/rfc6585#section-4", problem.GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.Equal("https://tools.ietf.org/html/rfc9110#section-15.5.14", (await tooLarge.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("type").GetString());

        // A replay adds nothing, so it gets its ingestion however full the queue is.
        Assert.Equal(HttpStatusCode.Accepted, replayed.StatusCode);
        Assert.Equal(await IdOf(accepted), await IdOf(replayed));
        Assert.Equal(6, (await app.GetJsonAsync("/queue")).GetProperty("total_waiting").GetInt64());
    }

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task BackpressureJudgesARequestByTheWorkAheadOfItAtItsPriorityAndAbove(string provider)
    {
        // One window an hour, MaxBacklog five hours. The first window takes 1, 2, 3 at once; the next starts in an hour.
        await using var database = provider == "Postgres" ? await TempPostgresDatabase.CreateAsync() : null;
        var settings = new Dictionary<string, string?>
        {
            ["Ingestion:Window"] = "01:00:00",
            ["Ingestion:MaxBacklog"] = "05:00:00",
            ["Upstream:SimulatedDelay"] = "01:00:00",
            ["Ingestion:ShutdownTimeout"] = "00:00:00",
        };
        if (database is not null)
        {
            settings["Storage:Provider"] = "Postgres";
            settings["Storage:ConnectionString"] = database.ConnectionString;
        }

        await using var app = new IngestionApp(settings);
        await app.SubmitAsync("LOW", 1, 2, 3);
        await Eventually.ReturnsAsync(() => app.GetJsonAsync("/queue"), q => q.GetProperty("total_waiting").GetInt64() == 0, TimeSpan.FromSeconds(10), "the first window to take the ids");

        // 12 LOW ids: the next admission and four windows, five hours, just fits.
        using var lowBacklog = await PostAsync(app, JsonSerializer.Serialize(new { ids = Enumerable.Range(11, 12), priority = "LOW" }));

        // HIGH overtakes LOW: nothing waits ahead of it, so it fits however long the LOW backlog is.
        using var high = await PostAsync(app, """{"ids": [21, 22, 23, 24, 25, 26], "priority": "HIGH"}""");

        // A LOW id waits behind all 18: seven windows after the next admission, three hours too many.
        using var low = await PostAsync(app, """{"ids": [31], "priority": "LOW"}""");

        // Another HIGH fills HIGH's share to five hours; a third would need one more.
        using var secondHigh = await PostAsync(app, """{"ids": [41, 42, 43, 44, 45, 46], "priority": "HIGH"}""");
        using var thirdHigh = await PostAsync(app, """{"ids": [51, 52, 53], "priority": "HIGH"}""");

        Assert.Equal(
            [HttpStatusCode.Accepted, HttpStatusCode.Accepted, HttpStatusCode.TooManyRequests, HttpStatusCode.Accepted, HttpStatusCode.TooManyRequests],
            new[] { lowBacklog, high, low, secondHigh, thirdHigh }.Select(r => r.StatusCode));
        Assert.InRange(low.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(3 * 3600 - 10), TimeSpan.FromSeconds(3 * 3600));
        Assert.InRange(thirdHigh.Headers.RetryAfter!.Delta!.Value, TimeSpan.FromSeconds(3600 - 10), TimeSpan.FromSeconds(3600));
        Assert.Contains("HIGH priority and above", (await thirdHigh.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(24, (await app.GetJsonAsync("/queue")).GetProperty("total_waiting").GetInt64());
    }

    [Fact]
    public async Task WithoutMaxBacklogNothingIsRefused()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });

        using var large = await PostAsync(app, JsonSerializer.Serialize(new { ids = Enumerable.Range(1, 50_000), priority = "LOW" }));

        Assert.Equal(HttpStatusCode.Accepted, large.StatusCode);
    }

    private static async Task<HttpResponseMessage> PostAsync(IngestionApp app, string json, string? key = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/ingest") { Content = JsonContent(json) };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return await app.Client.SendAsync(request, Token);
    }

    private static StringContent JsonContent(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    private static async Task<Guid> IdOf(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid();
}
