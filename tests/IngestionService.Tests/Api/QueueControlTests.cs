using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>Pausing and resuming the queue over real HTTP: every answer, what the queue and the status say, and the admin key.</summary>
public sealed class QueueControlTests
{
    private const string Key = "operator-key-0123456789";

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task APauseHoldsTheQueueShowsInQueueAndStatusAndTheResumeLetsItRun()
    {
        // One id per window and a long window, so the second submission waits behind the first.
        await using var app = new IngestionApp(new() { ["Ingestion:BatchSize"] = "1", ["Ingestion:Window"] = "00:00:01", ["Upstream:SimulatedDelay"] = "00:00:00" });

        using var paused = await PostAsync(app, "/queue/pause", """{"reason": "upstream maintenance until 14:00"}""");
        var pausedQueue = await paused.Content.ReadFromJsonAsync<JsonElement>(Token);
        var waiting = await app.SubmitAsync("HIGH", 1, 2);             // still accepted
        var status = await app.StatusAsync(waiting);
        var queue = await app.GetJsonAsync("/queue");
        await Task.Delay(TimeSpan.FromSeconds(1.5), Token);              // longer than a window: still nothing may start
        var stillWaiting = await app.StatusAsync(waiting);

        Assert.Equal(HttpStatusCode.OK, paused.StatusCode);
        Assert.True(pausedQueue.GetProperty("paused").GetBoolean());
        Assert.Equal("upstream maintenance until 14:00", pausedQueue.GetProperty("pause_reason").GetString());
        Assert.EndsWith("Z", pausedQueue.GetProperty("paused_at").GetString(), StringComparison.Ordinal);
        Assert.True(status.GetProperty("queue_paused").GetBoolean());
        Assert.All(status.GetProperty("batches").EnumerateArray(), b => Assert.Equal(JsonValueKind.Null, b.GetProperty("estimated_start_at").ValueKind));
        var high = queue.GetProperty("priorities")[0];
        Assert.Equal((2, JsonValueKind.Null, JsonValueKind.Null), (high.GetProperty("waiting").GetInt32(), high.GetProperty("drain_seconds").ValueKind, high.GetProperty("drained_at").ValueKind));
        Assert.Equal(("yet_to_start", 0), (stillWaiting.GetProperty("status").GetString(), stillWaiting.GetProperty("started_ids").GetInt32()));
        Assert.Empty((await app.GetJsonAsync("/windows")).GetProperty("windows").EnumerateArray());

        using var resumed = await PostAsync(app, "/queue/resume", null);
        var resumedQueue = await resumed.Content.ReadFromJsonAsync<JsonElement>(Token);
        var done = await Eventually.ReturnsAsync(() => app.StatusAsync(waiting), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(15), "the resumed queue to run the ingestion");

        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);
        Assert.Equal((false, JsonValueKind.Null, JsonValueKind.Null), (resumedQueue.GetProperty("paused").GetBoolean(), resumedQueue.GetProperty("paused_at").ValueKind, resumedQueue.GetProperty("pause_reason").ValueKind));
        Assert.False(done.TryGetProperty("queue_paused", out _));

        // Resuming a running queue, and pausing without a body, are fine too.
        using var again = await PostAsync(app, "/queue/resume", null);
        using var bare = await PostAsync(app, "/queue/pause", null);
        var bareQueue = await bare.Content.ReadFromJsonAsync<JsonElement>(Token);
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (again.StatusCode, bare.StatusCode));
        Assert.Equal((true, JsonValueKind.Null), (bareQueue.GetProperty("paused").GetBoolean(), bareQueue.GetProperty("pause_reason").ValueKind));
    }

    [Theory]
    [InlineData("""{"reasn": "x"}""", "application/json", 422, "did you mean 'reason'?")]
    [InlineData("""{"reason": 42}""", "application/json", 422, "'reason' must be a string")]
    [InlineData("""{"reason": ""}""", "application/json", 422, "'reason' must be a string")]
    [InlineData("""{"reason": "two\nlines"}""", "application/json", 422, "on one line")]
    [InlineData("""["reason"]""", "application/json", 422, "must be a JSON object")]
    [InlineData("""{"reason": "x",}""", "application/json", 400, "trailing comma")]
    [InlineData("reason=x", "application/x-www-form-urlencoded", 415, "Content-Type: application/json")]
    public async Task ABadPauseBodyIsRefusedSayingWhatToSendAndPausesNothing(string body, string contentType, int status, string expected)
    {
        await using var app = new IngestionApp();

        using var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        using var response = await app.Client.PostAsync(new Uri("/queue/pause", UriKind.Relative), content, Token);
        var text = await response.Content.ReadAsStringAsync(Token);

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(expected, text, StringComparison.Ordinal);
        Assert.False((await app.GetJsonAsync("/queue")).GetProperty("paused").GetBoolean());
    }

    [Fact]
    public async Task AReasonLongerThan500CharactersIsRefused()
    {
        await using var app = new IngestionApp();

        using var response = await PostAsync(app, "/queue/pause", JsonSerializer.Serialize(new { reason = new string('x', 501) }));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.False((await app.GetJsonAsync("/queue")).GetProperty("paused").GetBoolean());
    }

    [Fact]
    public async Task WithAnAdminKeyTheControlCallsNeedItAndEverythingElseStaysOpen()
    {
        await using var app = new IngestionApp(new() { ["Admin:ApiKey"] = Key });

        using var none = await PostAsync(app, "/queue/pause", null);
        using var wrong = await PostAsync(app, "/queue/pause", null, "Bearer operator-key-0123456788");
        using var basic = await PostAsync(app, "/queue/pause", null, $"Basic {Key}");
        var stillRunning = await app.GetJsonAsync("/queue");
        var submitted = await app.SubmitAsync("LOW", 1);                 // POST /ingest needs no key
        using var right = await PostAsync(app, "/queue/pause", null, $"Bearer {Key}");
        using var resumeWithout = await PostAsync(app, "/queue/resume", null);
        using var resume = await PostAsync(app, "/queue/resume", null, $"bearer {Key}");

        foreach (var refused in new[] { none, wrong, basic, resumeWithout })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.Equal("Bearer", refused.Headers.WwwAuthenticate.Single().Scheme);
            Assert.Contains("Authorization: Bearer", await refused.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);
        }

        Assert.Contains("Admin key required", await none.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);
        Assert.Contains("Wrong admin key", await wrong.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);

        Assert.False(stillRunning.GetProperty("paused").GetBoolean());
        Assert.NotEqual(Guid.Empty, submitted);
        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (right.StatusCode, resume.StatusCode));
        Assert.False((await app.GetJsonAsync("/queue")).GetProperty("paused").GetBoolean());
    }

    [Fact]
    public async Task AnotherSitesPageCannotPauseTheQueueThroughABrowserAndABodyPastTheLimitIsRefused()
    {
        await using var app = new IngestionApp();
        var own = app.Client.BaseAddress!.GetLeftPart(UriPartial.Authority);

        using var fromElsewhere = await PostWithHeadersAsync(app, "/queue/pause", ("Origin", "https://attacker.example"));
        using var crossSite = await PostWithHeadersAsync(app, "/queue/resume", ("Sec-Fetch-Site", "cross-site"));
        using var huge = await PostAsync(app, "/queue/pause", JsonSerializer.Serialize(new { reason = new string('x', 5000) }));
        var stillRunning = await app.GetJsonAsync("/queue");
        using var fromItself = await PostWithHeadersAsync(app, "/queue/pause", ("Origin", own), ("Sec-Fetch-Site", "same-origin"));

        Assert.Equal((HttpStatusCode.Forbidden, HttpStatusCode.Forbidden), (fromElsewhere.StatusCode, crossSite.StatusCode));
        Assert.Equal("application/problem+json", fromElsewhere.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
        Assert.False(stillRunning.GetProperty("paused").GetBoolean());
        Assert.Equal(HttpStatusCode.OK, fromItself.StatusCode);
    }

    [Fact]
    public async Task BothCallsAreInTheOpenApiDocumentUnderQueueControlWithTheirAnswers()
    {
        await using var app = new IngestionApp();

        var paths = (await app.GetJsonAsync("/openapi/v1.json")).GetProperty("paths");
        var pause = paths.GetProperty("/queue/pause").GetProperty("post");
        var resume = paths.GetProperty("/queue/resume").GetProperty("post");

        Assert.Equal("Queue control", pause.GetProperty("tags")[0].GetString());
        Assert.Equal(["200", "400", "401", "403", "413", "415", "422"], pause.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        Assert.Equal(["200", "401", "403", "422"], resume.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
    }

    private static async Task<HttpResponseMessage> PostWithHeadersAsync(IngestionApp app, string path, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative));
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return await app.Client.SendAsync(request, Token);
    }

    private static async Task<HttpResponseMessage> PostAsync(IngestionApp app, string path, string? json, string? authorization = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative));
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
