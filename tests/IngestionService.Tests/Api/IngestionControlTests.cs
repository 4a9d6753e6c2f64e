using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>Cancelling an ingestion, moving it to another priority, and a request's not_after over real HTTP: every answer, the status, the metrics and the admin key.</summary>
public sealed class IngestionControlTests
{
    private const string Key = "operator-key-0123456789";

    // One id per window and a long window: the first id runs, everything else waits.
    private static readonly Dictionary<string, string?> Slow = new() { ["Ingestion:BatchSize"] = "1", ["Ingestion:Window"] = "00:10:00", ["Upstream:SimulatedDelay"] = "00:00:00" };

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ACancelAnswersTheStatusOnceTwiceAndConflictsWhenEverythingStarted()
    {
        await using var app = new IngestionApp(Slow);
        var running = await app.SubmitAsync("HIGH", 1);
        await Eventually.ReturnsAsync(() => app.StatusAsync(running), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window");
        var waiting = await app.SubmitAsync("LOW", 2, 3, 4, 5);

        using var cancelled = await PostAsync(app, $"/ingestions/{waiting}/cancel");
        var body = await cancelled.Content.ReadFromJsonAsync<JsonElement>(Token);
        using var again = await PostAsync(app, $"/ingestions/{waiting}/cancel");
        using var nothingLeft = await PostAsync(app, $"/ingestions/{running}/cancel");
        using var unknown = await PostAsync(app, $"/ingestions/{Guid.CreateVersion7()}/cancel");
        using var malformed = await PostAsync(app, "/ingestions/not-a-uuid/cancel");
        using var withBody = await PostJsonAsync(app, $"/ingestions/{running}/cancel", """{"reason": "no longer needed"}""");
        var status = await app.StatusAsync(waiting);

        Assert.Equal((HttpStatusCode.OK, HttpStatusCode.OK), (cancelled.StatusCode, again.StatusCode));
        Assert.Equal(("cancelled", 4, "requested", 0), (body.GetProperty("status").GetString(), body.GetProperty("cancelled_ids").GetInt32(), body.GetProperty("cancel_reason").GetString(), body.GetProperty("started_ids").GetInt32()));
        Assert.Equal(JsonValueKind.Null, body.GetProperty("ids_ahead").ValueKind);
        Assert.All(body.GetProperty("batches").EnumerateArray(), b => Assert.Equal(("cancelled", 1, JsonValueKind.Null), (b.GetProperty("status").GetString(), b.GetProperty("cancelled_ids").GetInt32(), b.GetProperty("estimated_start_at").ValueKind)));
        Assert.Equal(body.GetProperty("cancelled_at").GetString(), (await again.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("cancelled_at").GetString());
        Assert.Equal(body.ToString(), status.ToString());
        await AssertProblemAsync(nothingLeft, HttpStatusCode.Conflict, "handed to a window already");
        await AssertProblemAsync(unknown, HttpStatusCode.NotFound, "No ingestion has the id");
        await AssertProblemAsync(malformed, HttpStatusCode.NotFound, "not-a-uuid");
        await AssertProblemAsync(withBody, HttpStatusCode.UnprocessableEntity, "A cancel has no options");
        Assert.Equal(4, app.LatestMeasurement<long>("ingestion.ids.cancelled", ("ingestion.cancel_reason", "requested")));
        Assert.Equal(0, (await app.GetJsonAsync("/queue")).GetProperty("total_waiting").GetInt64());

        // The brief's contract is untouched for what was never cancelled.
        var plain = await app.StatusAsync(running);
        Assert.False(plain.TryGetProperty("cancelled_ids", out _) || plain.TryGetProperty("not_after", out _) || plain.TryGetProperty("cancel_reason", out _));
    }

    [Fact]
    public async Task WithAnAdminKeyACancelNeedsIt()
    {
        await using var app = new IngestionApp(new(Slow) { ["Admin:ApiKey"] = Key });
        await app.SubmitAsync("HIGH", 1);
        var waiting = await app.SubmitAsync("LOW", 2);

        using var without = await PostAsync(app, $"/ingestions/{waiting}/cancel");
        var stillWaiting = await app.StatusAsync(waiting);
        using var with = await PostAsync(app, $"/ingestions/{waiting}/cancel", $"Bearer {Key}");

        Assert.Equal(HttpStatusCode.Unauthorized, without.StatusCode);
        Assert.False(stillWaiting.TryGetProperty("cancelled_ids", out _));
        Assert.Equal(HttpStatusCode.OK, with.StatusCode);
    }

    [Fact]
    public async Task ANotAfterIsShownInTheStatusAndExpiresTheIdsNotStartedByThen()
    {
        await using var app = new IngestionApp(new(Slow) { ["Ingestion:Window"] = "00:00:01" });
        await app.SubmitAsync("HIGH", 1);
        var notAfter = DateTimeOffset.UtcNow.AddMilliseconds(2500);
        using var response = await app.PostIngestAsync(JsonSerializer.Serialize(new { ids = new[] { 2, 3, 4, 5 }, priority = "LOW", not_after = notAfter.ToOffset(TimeSpan.FromHours(2)).ToString("yyyy-MM-ddTHH:mm:ss.fffzzz", System.Globalization.CultureInfo.InvariantCulture) }));
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid();

        var expired = await Eventually.ReturnsAsync(() => app.StatusAsync(id), s => s.GetProperty("status").GetString() == "cancelled", TimeSpan.FromSeconds(15), "the ids past their not_after to expire");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal(notAfter.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture), expired.GetProperty("not_after").GetString());
        Assert.Equal("expired", expired.GetProperty("cancel_reason").GetString());
        Assert.InRange(expired.GetProperty("cancelled_ids").GetInt32(), 1, 4); // at one id per second, some started in time (the fake-clock test pins which)
        Assert.Equal(4, expired.GetProperty("started_ids").GetInt32() + expired.GetProperty("cancelled_ids").GetInt32());
        Assert.True(DateTimeOffset.Parse(expired.GetProperty("cancelled_at").GetString()!, System.Globalization.CultureInfo.InvariantCulture) >= notAfter.AddMilliseconds(-1));
    }

    [Theory]
    [InlineData("\"2020-01-01T00:00:00Z\"", "is not in the future")]
    [InlineData("\"2099-01-01T00:00:00\"", "with an offset")]
    [InlineData("\"tomorrow\"", "with an offset")]
    [InlineData("\"2099-13-01T00:00:00Z\"", "with an offset")]
    [InlineData("1767225600", "must be a string")]
    public async Task ANotAfterInThePastOrUnreadableIsRefusedAndNothingIsStored(string notAfter, string expected)
    {
        await using var app = new IngestionApp();

        using var response = await app.PostIngestAsync($$"""{"ids": [1], "priority": "LOW", "not_after": {{notAfter}}}""");
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>(Token);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(expected, problem.GetProperty("errors").GetProperty("not_after")[0].GetString(), StringComparison.Ordinal);
        Assert.Empty((await app.GetJsonAsync("/ingestions")).GetProperty("ingestions").EnumerateArray());
    }

    [Fact]
    public async Task AnIdempotencyKeyStandsForItsNotAfterTooWhateverTheOffset()
    {
        await using var app = new IngestionApp();
        var at = DateTimeOffset.UtcNow.AddHours(2);
        string Body(DateTimeOffset notAfter, TimeSpan offset) => JsonSerializer.Serialize(new { ids = new[] { 1, 2 }, priority = "LOW", not_after = notAfter.ToOffset(offset).ToString("yyyy-MM-ddTHH:mm:ss.fffzzz", System.Globalization.CultureInfo.InvariantCulture) });

        using var first = await PostWithKeyAsync(app, Body(at, TimeSpan.Zero));
        using var sameMoment = await PostWithKeyAsync(app, Body(at, TimeSpan.FromHours(-5)));
        using var otherMoment = await PostWithKeyAsync(app, Body(at.AddMinutes(1), TimeSpan.Zero));

        Assert.Equal((HttpStatusCode.Accepted, HttpStatusCode.Accepted, HttpStatusCode.UnprocessableEntity), (first.StatusCode, sameMoment.StatusCode, otherMoment.StatusCode));
        Assert.Equal("true", sameMoment.Headers.GetValues("Idempotent-Replayed").Single());
    }

    [Fact]
    public async Task ARetryOfAStoredRequestIsAnsweredAsSuchAfterItsNotAfterHasPassed()
    {
        await using var app = new IngestionApp();
        await app.GetJsonAsync("/queue"); // started, so the first POST comes well before its not_after
        var soon = DateTimeOffset.UtcNow.AddSeconds(1);
        var body = JsonSerializer.Serialize(new { ids = new[] { 1 }, priority = "LOW", not_after = soon.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture) });

        using var first = await PostWithKeyAsync(app, body, "late-retry-key");
        await Eventually.HoldsAsync(() => DateTimeOffset.UtcNow > soon.AddMilliseconds(10), TimeSpan.FromSeconds(5), "the not_after to pass");
        using var retry = await PostWithKeyAsync(app, body, "late-retry-key");
        using var fresh = await PostWithKeyAsync(app, body, "another-key");

        Assert.Equal((HttpStatusCode.Accepted, HttpStatusCode.Accepted, HttpStatusCode.UnprocessableEntity), (first.StatusCode, retry.StatusCode, fresh.StatusCode));
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(
            (await first.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid(),
            (await retry.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid());
    }

    private static async Task<HttpResponseMessage> PostWithKeyAsync(IngestionApp app, string json, string key = "not-after-key-1")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/ingest", UriKind.Relative)) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Add("Idempotency-Key", key);
        return await app.Client.SendAsync(request, Token);
    }

    [Fact]
    public async Task TheCancelIsInTheOpenApiDocumentWithItsAnswersAndNotAfterIsARequestField()
    {
        await using var app = new IngestionApp();

        var document = await app.GetJsonAsync("/openapi/v1.json");
        var cancel = document.GetProperty("paths").GetProperty("/ingestions/{ingestionId}/cancel").GetProperty("post");
        var request = document.GetProperty("components").GetProperty("schemas").GetProperty("IngestRequest").GetProperty("properties");

        Assert.Equal("Queue control", cancel.GetProperty("tags")[0].GetString());
        Assert.Equal(["200", "401", "403", "404", "409", "422"], cancel.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        Assert.True(request.TryGetProperty("not_after", out _));
    }

    [Fact]
    public async Task APatchMovesTheWaitingIdsAndAnswersTheStatusOrSaysWhatIsWrong()
    {
        await using var app = new IngestionApp(Slow);
        var running = await app.SubmitAsync("HIGH", 1);
        await Eventually.ReturnsAsync(() => app.StatusAsync(running), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window");
        await app.SubmitAsync("MEDIUM", 2, 3);
        var low = await app.SubmitAsync("LOW", 4);
        var before = await app.StatusAsync(low);

        using var moved = await PatchAsync(app, $"/ingestions/{low}", """{"priority": "HIGH"}""", "application/merge-patch+json");
        var body = await moved.Content.ReadFromJsonAsync<JsonElement>(Token);
        using var same = await PatchAsync(app, $"/ingestions/{low}", """{"priority": "HIGH"}""");
        using var nothingWaits = await PatchAsync(app, $"/ingestions/{running}", """{"priority": "LOW"}""");
        using var unknown = await PatchAsync(app, $"/ingestions/{Guid.CreateVersion7()}", """{"priority": "LOW"}""");
        using var badValue = await PatchAsync(app, $"/ingestions/{low}", """{"priority": "high"}""");
        using var badField = await PatchAsync(app, $"/ingestions/{low}", """{"priorty": "LOW"}""");
        using var otherField = await PatchAsync(app, $"/ingestions/{low}", """{"ids": [1]}""");
        using var missing = await PatchAsync(app, $"/ingestions/{low}", """{}""");
        using var empty = await PatchAsync(app, $"/ingestions/{low}", "");
        using var notJson = await PatchAsync(app, $"/ingestions/{low}", "priority=LOW", "application/x-www-form-urlencoded");
        var after = await app.StatusAsync(low);

        Assert.Equal(2, before.GetProperty("ids_ahead").GetInt32());
        Assert.Equal((HttpStatusCode.OK, "HIGH", 0), (moved.StatusCode, body.GetProperty("priority").GetString(), body.GetProperty("ids_ahead").GetInt32()));
        Assert.Equal(HttpStatusCode.OK, same.StatusCode);
        Assert.Equal("HIGH", after.GetProperty("priority").GetString());
        await AssertProblemAsync(nothingWaits, HttpStatusCode.Conflict, "No id of ingestion");
        await AssertProblemAsync(unknown, HttpStatusCode.NotFound, "No ingestion has the id");
        Assert.Equal((HttpStatusCode.UnprocessableEntity, HttpStatusCode.UnprocessableEntity), (badValue.StatusCode, badField.StatusCode));
        Assert.Contains("HIGH, MEDIUM, LOW, in capitals (got \"high\")", (await badValue.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("errors").GetProperty("priority")[0].GetString(), StringComparison.Ordinal);
        Assert.Contains("is not a field of this call. It takes 'priority'.", await otherField.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);
        Assert.Contains("'priority' is required", await missing.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);
        Assert.Contains("did you mean 'priority'?", await badField.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);
        Assert.Equal((HttpStatusCode.BadRequest, HttpStatusCode.UnsupportedMediaType), (empty.StatusCode, notJson.StatusCode));
    }

    [Fact]
    public async Task WithAnAdminKeyAPatchNeedsItAndThePatchIsInTheOpenApiDocument()
    {
        await using var app = new IngestionApp(new(Slow) { ["Admin:ApiKey"] = Key });
        await app.SubmitAsync("HIGH", 1);
        var waiting = await app.SubmitAsync("LOW", 2);

        using var without = await PatchAsync(app, $"/ingestions/{waiting}", """{"priority": "HIGH"}""");
        using var with = await PatchAsync(app, $"/ingestions/{waiting}", """{"priority": "HIGH"}""", authorization: $"Bearer {Key}");
        var patch = (await app.GetJsonAsync("/openapi/v1.json")).GetProperty("paths").GetProperty("/ingestions/{ingestionId}").GetProperty("patch");

        Assert.Equal((HttpStatusCode.Unauthorized, HttpStatusCode.OK), (without.StatusCode, with.StatusCode));
        Assert.Equal(["200", "400", "401", "403", "404", "409", "413", "415", "422"], patch.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        Assert.True(patch.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/merge-patch+json", out _));
    }

    private static async Task<HttpResponseMessage> PatchAsync(IngestionApp app, string path, string body, string contentType = "application/json", string? authorization = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Patch, new Uri(path, UriKind.Relative)) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return await app.Client.SendAsync(request, Token);
    }

    private static async Task<HttpResponseMessage> PostJsonAsync(IngestionApp app, string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative)) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        return await app.Client.SendAsync(request, Token);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string detail)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(detail, (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    private static async Task<HttpResponseMessage> PostAsync(IngestionApp app, string path, string? authorization = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path, UriKind.Relative)) { Content = new StringContent(string.Empty, Encoding.UTF8) };
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        return await app.Client.SendAsync(request, Token);
    }
}
