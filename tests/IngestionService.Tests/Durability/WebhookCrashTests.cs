using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Durability;

/// <summary>
/// The outbox across a crash: the service is killed with SIGKILL after the window that finished the
/// ingestion, while the event's first attempt is still waiting for its answer, and started again on the
/// same database. The event is delivered afterwards, with the same webhook-id and the same body.
/// </summary>
public sealed class WebhookCrashTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static Dictionary<string, string> Settings() => new()
    {
        ["Ingestion:Window"] = "00:00:00.200",
        ["Upstream:SimulatedDelay"] = "00:00:00",
        ["Notifications:AllowPrivateNetworks"] = "true",
        ["Notifications:SigningSecret"] = WebhookReceiver.Secret,
        ["Notifications:Timeout"] = "00:00:05", // the kill must land while the first attempt waits; the lease is 15 s
        ["Notifications:RetryBaseDelay"] = "00:00:00.200",
        ["Notifications:PollInterval"] = "00:00:00.100",
    };

    [Theory]
    [InlineData("sqlite")]
    [InlineData("postgres")]
    public async Task AnEventWhoseAttemptWasCutShortByAKillIsDeliveredAfterTheRestartWithTheSameId(string store)
    {
        // The first attempt never gets its answer before the kill; the next one is accepted.
        await using var receiver = await WebhookReceiver.StartAsync(n => n == 1 ? new HookAnswer(200, Delay: TimeSpan.FromMinutes(1)) : new HookAnswer(200));
        using var sqlite = new TempDatabase();
        await using var postgres = store == "postgres" ? await TempPostgresDatabase.CreateAsync() : null;
        var settings = Settings();
        if (postgres is not null)
        {
            settings["Storage:Provider"] = "Postgres";
        }

        var connectionString = postgres?.ConnectionString ?? sqlite.ConnectionString;
        Guid id;
        await using (var doomed = await ServiceProcess.StartAsync(connectionString, settings))
        {
            using var response = await doomed.Client.PostAsJsonAsync("/ingest", new { ids = new[] { 1, 2, 3, 4 }, priority = "MEDIUM", callback_url = receiver.HookUrl }, Token);
            id = (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid();
            await Eventually.HoldsAsync(() => !receiver.Deliveries.IsEmpty, TimeSpan.FromSeconds(30), "the first attempt to arrive");
            await doomed.KillAsync();
        }

        await using var revived = await ServiceProcess.StartAsync(connectionString, settings);
        var deliveries = await Eventually.ReturnsAsync(
            () => revived.Client.GetFromJsonAsync<JsonElement>($"/ingestions/{id}/deliveries", Token),
            d => d.GetProperty("events")[0].GetProperty("state").GetString() == "delivered", TimeSpan.FromSeconds(60), "the event to be delivered after the restart");

        var received = receiver.Deliveries.ToList();
        Assert.True(received.Count >= 2, $"{received.Count} deliveries");
        Assert.All(received, d => Assert.True(d.Verified, d.VerifyError));
        Assert.All(received, d => Assert.Equal($"msg_{id:N}", d.Id));
        Assert.Single(received.Select(d => d.Body).Distinct());
        // The cut-short attempt left no record (its process died before it could store one), unless a loaded
        // machine was slower to kill it than its timeout: then it is on record as that, and nothing else is.
        var attempts = deliveries.GetProperty("events")[0].GetProperty("attempts").EnumerateArray().ToList();
        Assert.Equal(200, attempts[^1].GetProperty("http_status").GetInt32());
        Assert.All(attempts[..^1], a => Assert.Contains("Notifications:Timeout", a.GetProperty("error").GetString(), StringComparison.Ordinal));
    }
}
