using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Storage.Sqlite;
using IngestionService.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace IngestionService.Tests.Api;

/// <summary>
/// A full disk over real HTTP on a real SQLite file, made with SQLite's own page limit: submissions answer
/// 503 with a Retry-After, readiness says why, nothing is half-written, and once there is space again
/// everything carries on by itself.
/// </summary>
public sealed class FullDiskTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AFullDiskAnswers503WithRetryAfterStoresNothingAndTheServiceRecoversWithoutARestart()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "00:00:00.100", ["Upstream:SimulatedDelay"] = "00:00:00" });
        var before = await app.SubmitAsync("HIGH", 1, 2, 3);
        await CompletedAsync(app, before);
        await PostAsync(app, "/queue/pause");
        var held = await app.SubmitAsync("MEDIUM", 4, 5, 6, 7);          // waits while the disk fills
        var database = app.Services.GetRequiredService<SqliteDatabase>();
        var recent = await CountRecentAsync(app);

        await database.CapAtCurrentSizeAsync(cap: true, Token);
        using var refused = await app.PostIngestAsync(Request(50_000));
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>(Token);
        using var notReady = await app.Client.GetAsync(new Uri("/health/ready", UriKind.Relative), Token);
        var readiness = await notReady.Content.ReadAsStringAsync(Token);
        await PostAsync(app, "/queue/resume");                            // the dispatcher meets the full disk too

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Equal(TimeSpan.FromSeconds(5), refused.Headers.RetryAfter?.Delta);
        Assert.Equal("The store is full", problem.GetProperty("title").GetString());
        Assert.Contains("SQLITE_FULL", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal("https://tools.ietf.org/html/rfc9110#section-15.6.4", problem.GetProperty("type").GetString());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
        Assert.Contains("refuses writes", readiness, StringComparison.Ordinal);
        Assert.Equal(recent, await CountRecentAsync(app));                // the refused request left nothing behind
        Assert.Equal(1, app.LatestMeasurement<int>("ingestion.store.refusing_writes"));

        await database.CapAtCurrentSizeAsync(cap: false, Token);
        await Eventually.ReturnsAsync(
            async () => (await app.Client.GetAsync(new Uri("/health/ready", UriKind.Relative), Token)).StatusCode,
            status => status == HttpStatusCode.OK, TimeSpan.FromSeconds(10), "readiness to see writes work again");
        using var accepted = await app.PostIngestAsync(Request(50_000));
        var after = await app.SubmitAsync("HIGH", 8, 9);

        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        await CompletedAsync(app, held);
        await CompletedAsync(app, after);
        Assert.Equal(0, app.LatestMeasurement<int>("ingestion.store.refusing_writes"));
        var status = await app.StatusAsync(held);
        Assert.Equal(4, status.GetProperty("completed_ids").GetInt32());
    }

    [Fact]
    public async Task AReadOnlyPostgresAnswers503LosesNothingAndTheServiceRecoversWithoutARestart()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        await using var app = IngestionApp.OnPostgres(database, new()
        {
            ["Ingestion:Window"] = "00:00:00.300",
            ["Ingestion:PollInterval"] = "00:00:00.100",
            ["Upstream:SimulatedDelay"] = "00:00:00.100",
        });
        // Ten windows, three seconds: long enough to be caught running however slowly the status is read.
        var running = await app.SubmitAsync("MEDIUM", [.. Enumerable.Range(1, 30)]);
        await Eventually.ReturnsAsync(() => app.StatusAsync(running), s => s.GetProperty("status").GetString() == "triggered", TimeSpan.FromSeconds(10), "the first window to start");
        var stored = await database.ScalarAsync<long>("SELECT count(*) FROM ingestions");

        // A failover to a standby: the sessions are cut, and every new one is read-only.
        await database.SetReadOnlyAsync(true);
        app.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().Clear();
        using var refused = await app.PostIngestAsync(Request(1_000));
        var problem = await refused.Content.ReadFromJsonAsync<JsonElement>(Token);
        using var control = await app.Client.PostAsync(new Uri("/queue/pause", UriKind.Relative), null, Token);
        var readiness = await Eventually.ReturnsAsync(
            async () => await app.Client.GetAsync(new Uri("/health/ready", UriKind.Relative), Token),
            response => response.StatusCode == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10), "readiness to see the refusal");
        var windowsBefore = await database.ScalarAsync<long>("SELECT count(*) FROM windows");
        await Task.Delay(TimeSpan.FromSeconds(1), Token); // three windows' time in which the dispatcher meets the refusal
        var windowsWhileReadOnly = await database.ScalarAsync<long>("SELECT count(*) FROM windows") - windowsBefore;

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(5), refused.Headers.RetryAfter?.Delta);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.Contains("read-only", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, control.StatusCode);         // a control write is refused alike, not a 500
        Assert.Contains("refuses writes", await readiness.Content.ReadAsStringAsync(Token), StringComparison.Ordinal);
        Assert.Equal(stored, await database.ScalarAsync<long>("SELECT count(*) FROM ingestions"));
        Assert.Equal(0, windowsWhileReadOnly);

        await database.SetReadOnlyAsync(false);
        await Eventually.ReturnsAsync(
            async () => (await app.Client.GetAsync(new Uri("/health/ready", UriKind.Relative), Token)).StatusCode,
            status => status == HttpStatusCode.OK, TimeSpan.FromSeconds(10), "readiness to see writes work again");
        using var accepted = await app.PostIngestAsync(Request(5));
        var done = await CompletedAsync(app, running);

        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        Assert.Equal(30, done.GetProperty("completed_ids").GetInt32());
        var starts = (await app.GetJsonAsync("/windows?limit=100")).GetProperty("windows").EnumerateArray()
            .Select(w => w.GetProperty("started_at").GetDateTime()).Order().ToList();
        Assert.All(starts.Zip(starts.Skip(1)), pair => Assert.True(pair.Second - pair.First >= TimeSpan.FromMilliseconds(300), $"windows started {pair.First:O} and {pair.Second:O}"));
    }

    [Fact]
    public async Task ASubmissionThatMeetsACutDatabaseSessionAnswers503WithRetryAfterAndTheNextOneWorks()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        await using var app = IngestionApp.OnPostgres(database, new()
        {
            ["Ingestion:PollInterval"] = "00:00:10", // the dispatcher stays off the pool meanwhile
        });
        await app.SubmitAsync("LOW", 1); // the pool now holds a session

        // Which pooled session a request gets, and whether a background reader (the metrics sampler) meets
        // a cut one first, is not the test's to choose: cut them all before each request until one meets
        // a cut session. Every answer is a 202 or a 503, never a 500.
        HttpResponseMessage? cut = null;
        var answers = new List<HttpStatusCode>();
        for (var attempt = 0; attempt < 20 && cut is null; attempt++)
        {
            await database.TerminateSessionsAsync();
            var response = await app.PostIngestAsync(Request(3));
            answers.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                cut = response;
            }
            else
            {
                response.Dispose();
            }
        }

        Assert.All(answers, status => Assert.True(status is HttpStatusCode.Accepted or HttpStatusCode.ServiceUnavailable, $"answered {status}"));
        Assert.NotNull(cut);
        using var held = cut;
        var problem = await cut.Content.ReadFromJsonAsync<JsonElement>(Token);
        using var next = await app.PostIngestAsync(Request(3));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, cut.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), cut.Headers.RetryAfter?.Delta);
        Assert.Equal("The store is unavailable", problem.GetProperty("title").GetString());
        Assert.Contains("Idempotency-Key", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Accepted, next.StatusCode);
        using var ready = await app.Client.GetAsync(new Uri("/health/ready", UriKind.Relative), Token);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode); // one cut session is no refusal: readiness stays
    }

    private static string Request(int ids) => JsonSerializer.Serialize(new { ids = Enumerable.Range(1, ids), priority = "LOW" });

    private static async Task<int> CountRecentAsync(IngestionApp app) =>
        (await app.GetJsonAsync("/ingestions?limit=100")).GetProperty("ingestions").GetArrayLength();

    private static Task<JsonElement> CompletedAsync(IngestionApp app, Guid ingestion) =>
        Eventually.ReturnsAsync(() => app.StatusAsync(ingestion), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(20), $"ingestion {ingestion} to complete");

    private static async Task PostAsync(IngestionApp app, string path)
    {
        using var response = await app.Client.PostAsync(new Uri(path, UriKind.Relative), null, Token);
        response.EnsureSuccessStatusCode();
    }
}
