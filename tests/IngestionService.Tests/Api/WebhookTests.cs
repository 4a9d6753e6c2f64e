using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>
/// Webhooks over real HTTP, end to end: a real service (on a SQLite file, or on a real PostgreSQL server)
/// tells a loopback receiver that verifies every signature with a Standard Webhooks library; the receiver
/// fails, answers slowly and gives up as the tests script it.
/// </summary>
public sealed class WebhookTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    internal static Dictionary<string, string?> Settings(bool allowPrivate = true) => new()
    {
        ["Ingestion:Window"] = "00:00:00.200",
        ["Upstream:SimulatedDelay"] = "00:00:00",
        ["Notifications:AllowPrivateNetworks"] = allowPrivate ? "true" : "false",
        ["Notifications:SigningSecret"] = WebhookReceiver.Secret,
        ["Notifications:RetryBaseDelay"] = "00:00:00.100",
        ["Notifications:Timeout"] = "00:00:05", // a loaded machine can take seconds over a first delivery
        ["Notifications:PollInterval"] = "00:00:00.100",
    };

    internal static async Task<Guid> SubmitAsync(HttpClient client, Uri? callback, params int[] ids)
    {
        using var response = await client.PostAsJsonAsync("/ingest", new { ids, priority = "HIGH", callback_url = callback }, Token);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid();
    }

    internal static Task<JsonElement> DeliveredAsync(IngestionApp app, Guid id, string state = "delivered") =>
        Eventually.ReturnsAsync(() => app.GetJsonAsync($"/ingestions/{id}/deliveries"),
            d => d.GetProperty("events").EnumerateArray().Any(e => e.GetProperty("state").GetString() == state), TimeSpan.FromSeconds(30), $"the event to be {state}");

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task TheEventIsSignedRetriedThroughFailuresAndASlowAnswerAndSentTheSameEachTime(string store)
    {
        await using var receiver = await WebhookReceiver.StartAsync(n => n switch
        {
            1 or 2 => new HookAnswer(500),
            3 => new HookAnswer(200, Delay: TimeSpan.FromSeconds(30)), // past Notifications:Timeout (5 s): no answer in time
            _ => new HookAnswer(204),
        });
        await using var database = store == "postgres" ? await TempPostgresDatabase.CreateAsync() : null;
        await using var app = database is null ? new IngestionApp(Settings()) : IngestionApp.OnPostgres(database, Settings());

        var id = await SubmitAsync(app.Client, receiver.HookUrl, 1, 2, 3, 4, 5);
        var deliveries = await DeliveredAsync(app, id);
        var status = await app.StatusAsync(id);

        var received = receiver.Deliveries.ToList();
        Assert.Equal(4, received.Count);
        Assert.All(received, d => Assert.True(d.Verified, d.VerifyError));
        Assert.All(received, d => Assert.Equal($"msg_{id:N}", d.Id));
        Assert.Single(received.Select(d => d.Body).Distinct());
        using var body = JsonDocument.Parse(received[0].Body);
        var data = body.RootElement.GetProperty("data");
        Assert.Equal("ingestion.completed", body.RootElement.GetProperty("type").GetString());
        Assert.Equal((id, "completed", "HIGH"), (data.GetProperty("ingestion_id").GetGuid(), data.GetProperty("status").GetString(), data.GetProperty("priority").GetString()));
        Assert.Equal((5, 5, 0, 0), (data.GetProperty("total_ids").GetInt32(), data.GetProperty("completed_ids").GetInt32(), data.GetProperty("failed_ids").GetInt32(), data.GetProperty("cancelled_ids").GetInt32()));
        Assert.Equal(new Uri(app.Client.BaseAddress!, $"/status/{id}"), new Uri(data.GetProperty("status_url").GetString()!));
        Assert.Equal(status.GetProperty("created_at").GetDateTime(), data.GetProperty("created_at").GetDateTime());
        Assert.Equal(data.GetProperty("finished_at").GetDateTime(), body.RootElement.GetProperty("timestamp").GetDateTime());
        Assert.False(body.RootElement.TryGetProperty("batches", out _));

        Assert.Equal(receiver.HookUrl.AbsoluteUri, deliveries.GetProperty("callback_url").GetString());
        var attempts = deliveries.GetProperty("events")[0].GetProperty("attempts").EnumerateArray().ToList();
        Assert.Equal([500, 500, 0, 204], attempts.Select(a => a.TryGetProperty("http_status", out var s) ? s.GetInt32() : 0));
        Assert.Contains("Notifications:Timeout", attempts[2].GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(3, app.LatestMeasurement<long>("ingestion.webhook.attempts", ("outcome", "retried")));
        Assert.Equal(1, app.LatestMeasurement<long>("ingestion.webhook.attempts", ("outcome", "delivered")));
    }

    [Fact]
    public async Task ACancelTellsIngestionCancelledAndA410StopsTheDeliveries()
    {
        await using var receiver = await WebhookReceiver.StartAsync(_ => new HookAnswer(410));
        await using var app = new IngestionApp(Settings());
        using (var pause = await app.Client.PostAsync(new Uri("/queue/pause", UriKind.Relative), null, Token))
        {
            pause.EnsureSuccessStatusCode();
        }

        var id = await SubmitAsync(app.Client, receiver.HookUrl, 1, 2, 3, 4);
        using (var cancel = await app.Client.PostAsync(new Uri($"/ingestions/{id}/cancel", UriKind.Relative), null, Token))
        {
            cancel.EnsureSuccessStatusCode();
        }

        var deliveries = await DeliveredAsync(app, id, "stopped");

        var delivery = Assert.Single(receiver.Deliveries);
        using var body = JsonDocument.Parse(delivery.Body);
        Assert.Equal("ingestion.cancelled", body.RootElement.GetProperty("type").GetString());
        Assert.Equal(("cancelled", 4, 0), (body.RootElement.GetProperty("data").GetProperty("status").GetString(),
            body.RootElement.GetProperty("data").GetProperty("cancelled_ids").GetInt32(), body.RootElement.GetProperty("data").GetProperty("completed_ids").GetInt32()));
        var only = Assert.Single(deliveries.GetProperty("events").EnumerateArray());
        Assert.Equal(("ingestion.cancelled", 1), (only.GetProperty("type").GetString(), only.GetProperty("attempts").GetArrayLength()));
        Assert.Equal(JsonValueKind.Null, only.GetProperty("next_attempt_at").ValueKind);
        Assert.Equal(1, app.LatestMeasurement<long>("ingestion.webhook.attempts", ("outcome", "stopped")));
    }

    [Theory]
    [InlineData("http://127.0.0.1:9/hook", "127.0.0.1")]
    [InlineData("http://[::1]:9/hook", "::1")]
    [InlineData("http://localhost:9/hook", "loopback")]
    [InlineData("http://10.1.2.3/hook", "10.1.2.3")]
    [InlineData("http://192.168.0.10/hook", "192.168.0.10")]
    [InlineData("http://169.254.169.254/latest/meta-data", "169.254.169.254")]
    [InlineData("http://[fd00::1]/hook", "fd00::1")]
    [InlineData("http://[::ffff:10.0.0.1]/hook", "10.0.0.1")]
    public async Task ACallbackIntoThePrivateNetworkIsRefusedAndNothingIsStored(string callback, string named)
    {
        await using var app = new IngestionApp(Settings(allowPrivate: false));

        using var response = await app.Client.PostAsJsonAsync("/ingest", new { ids = new[] { 1 }, priority = "LOW", callback_url = callback }, Token);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("errors").GetProperty("callback_url")[0].GetString()!;
        Assert.Contains("Notifications:AllowPrivateNetworks", error, StringComparison.Ordinal);
        if (named != "loopback")
        {
            Assert.Contains(named, error, StringComparison.Ordinal);
        }

        Assert.Equal(0, (await app.GetJsonAsync("/ingestions")).GetProperty("ingestions").GetArrayLength());
    }

    [Theory]
    [InlineData("\"ftp://example.com/hook\"", "absolute http or https URL")]
    [InlineData("\"/relative/hook\"", "absolute http or https URL")]
    [InlineData("\"https://user:secret@example.com/hook\"", "user name or password")]
    [InlineData("42", "must be a string")]
    public async Task AMisspeltCallbackIsRefusedWithItsReason(string json, string reason)
    {
        await using var app = new IngestionApp(Settings());

        using var response = await app.PostIngestAsync($$"""{"ids": [1], "priority": "LOW", "callback_url": {{json}}}""");

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("errors").GetProperty("callback_url")[0].GetString()!;
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ACallbackLongerThan2048CharactersIsRefused()
    {
        await using var app = new IngestionApp(Settings());
        var callback = "https://example.com/" + new string('a', 2048 - 20 + 1);

        using var response = await app.Client.PostAsJsonAsync("/ingest", new { ids = new[] { 1 }, priority = "LOW", callback_url = callback }, Token);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        Assert.Contains("at most 2048 characters (got 2049)", (await response.Content.ReadAsStringAsync(Token)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ACallbackAcceptedThenFoundToBePrivateAtDeliveryIsRefusedThere()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var database = new TempDatabase();
        Dictionary<string, string?> On(bool allowPrivate) => new(Settings(allowPrivate)) { ["Storage:ConnectionString"] = database.ConnectionString };
        Guid id;
        await using (var before = new IngestionApp(On(allowPrivate: true)))
        {
            using var pause = await before.Client.PostAsync(new Uri("/queue/pause", UriKind.Relative), null, Token);
            id = await SubmitAsync(before.Client, receiver.HookUrl, 1);
        }

        await using var after = new IngestionApp(On(allowPrivate: false));
        using (var resume = await after.Client.PostAsync(new Uri("/queue/resume", UriKind.Relative), null, Token))
        {
            resume.EnsureSuccessStatusCode();
        }

        var deliveries = await Eventually.ReturnsAsync(() => after.GetJsonAsync($"/ingestions/{id}/deliveries"),
            d => d.GetProperty("events").EnumerateArray().Any(e => e.GetProperty("attempts").GetArrayLength() > 0), TimeSpan.FromSeconds(30), "a first attempt");

        var attempt = deliveries.GetProperty("events")[0].GetProperty("attempts")[0];
        Assert.Contains("refused: resolves to 127.0.0.1, a loopback", attempt.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.False(attempt.TryGetProperty("http_status", out _));
        Assert.Equal("pending", deliveries.GetProperty("events")[0].GetProperty("state").GetString());
        Assert.Empty(receiver.Deliveries);
    }

    [Fact]
    public async Task AnUnknownIngestionHasNoDeliveries()
    {
        await using var app = new IngestionApp(Settings());

        using var response = await app.Client.GetAsync(new Uri($"/ingestions/{Guid.CreateVersion7()}/deliveries", UriKind.Relative), Token);
        using var malformed = await app.Client.GetAsync(new Uri("/ingestions/not-an-id/deliveries", UriKind.Relative), Token);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, malformed.StatusCode);
    }
}
