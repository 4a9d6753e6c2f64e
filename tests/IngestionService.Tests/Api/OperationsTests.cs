using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>What operators point their tools at: API docs, health, metrics, a clean stop, the wait explained.</summary>
public sealed class OperationsTests
{
    private static readonly Dictionary<string, string?> Quick = new()
    {
        ["Ingestion:Window"] = "00:00:01",
        ["Upstream:SimulatedDelay"] = "00:00:00.200",
    };

    [Fact]
    public async Task TheOpenApiDocumentDescribesBothEndpointsAndEveryAnswer()
    {
        await using var app = new IngestionApp();

        var document = await app.GetJsonAsync("/openapi/v1.json");

        Assert.StartsWith("3.1", document.GetProperty("openapi").GetString(), StringComparison.Ordinal);
        var ingest = document.GetProperty("paths").GetProperty("/ingest").GetProperty("post");
        Assert.Equal(["202", "400", "413", "415", "422", "429"], ingest.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        Assert.True(ingest.GetProperty("responses").GetProperty("202").GetProperty("headers").TryGetProperty("Location", out _));
        Assert.True(ingest.GetProperty("requestBody").GetProperty("content").TryGetProperty("application/json", out _));
        Assert.Equal("application/problem+json", ingest.GetProperty("responses").GetProperty("422").GetProperty("content").EnumerateObject().Single().Name);
        var status = document.GetProperty("paths").GetProperty("/status/{ingestionId}").GetProperty("get");
        Assert.Equal(["200", "404"], status.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        Assert.Contains(ingest.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "Idempotency-Key" && p.GetProperty("in").GetString() == "header");
        Assert.True(ingest.GetProperty("responses").GetProperty("429").GetProperty("headers").TryGetProperty("Retry-After", out _));
        var results = document.GetProperty("paths").GetProperty("/ingestions/{ingestionId}/results").GetProperty("get");
        Assert.Equal(["200", "400", "404"], results.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        var schemas = document.GetProperty("components").GetProperty("schemas");
        Assert.Equal(["succeeded", "retrying", "failed"], schemas.GetProperty("FetchState").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["HIGH", "MEDIUM", "LOW"], schemas.GetProperty("Priority").GetProperty("enum").EnumerateArray().Select(e => e.GetString()));
        Assert.True(schemas.GetProperty("IngestionStatus").GetProperty("properties").TryGetProperty("batches", out _));

        // The reference's sections are what a user does, never the classes behind the endpoints.
        var sections = document.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject())
            .Select(operation => operation.Value.GetProperty("tags").EnumerateArray().Single().GetString())
            .Distinct()
            .Order();
        Assert.Equal(["Notifications", "Operations", "Queue and windows", "Queue control", "Results", "Submit and track"], sections);
        Assert.Equal(["Submit and track", "Results", "Notifications", "Queue and windows", "Queue control", "Operations"], document.GetProperty("tags").EnumerateArray().Select(t => t.GetProperty("name").GetString()));
        var ready = document.GetProperty("paths").GetProperty("/health/ready").GetProperty("get");
        Assert.Equal(["200", "503"], ready.GetProperty("responses").EnumerateObject().Select(r => r.Name).Order());
        Assert.Equal("text/plain", document.GetProperty("paths").GetProperty("/metrics").GetProperty("get").GetProperty("responses").GetProperty("200").GetProperty("content").EnumerateObject().Single().Name);
        Assert.DoesNotContain("&amp;", document.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheInteractiveReferenceIsServedAtDocs()
    {
        await using var app = new IngestionApp();

        using var response = await app.Client.GetAsync(new Uri("/docs", UriKind.Relative), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var page = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("openapi/v1.json", page, StringComparison.Ordinal);

        // A self-hosted tool: the reference links to no outside service (AI chat, SDK generation and deploy, MCP) and reports nothing.
        Assert.Contains("\"showDeveloperTools\":\"never\"", page, StringComparison.Ordinal);
        Assert.Contains("\"agent\":{\"disabled\":true}", page, StringComparison.Ordinal);
        Assert.Contains("\"mcp\":{\"disabled\":true}", page, StringComparison.Ordinal);
        Assert.Contains("\"telemetry\":false", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthAnswersAsReadinessAndAnIngestionsAddressAnswersItsStatus()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });
        var ingestion = await app.SubmitAsync("LOW", 1, 2, 3, 4);
        // Until the first window's three ids are done, two reads may see different progress; then the
        // fourth waits an hour, so both addresses must give the same answer.
        var status = await Eventually.ReturnsAsync(
            () => app.Client.GetStringAsync(new Uri($"/status/{ingestion}", UriKind.Relative), TestContext.Current.CancellationToken),
            body =>
            {
                using var document = JsonDocument.Parse(body);
                return document.RootElement.GetProperty("completed_ids").GetInt32() == 3;
            },
            TimeSpan.FromSeconds(10),
            "the first window to finish");

        using var health = await app.Client.GetAsync(new Uri("/health", UriKind.Relative), TestContext.Current.CancellationToken);
        var report = await health.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
        var guessed = await app.Client.GetStringAsync(new Uri($"/ingestions/{ingestion}", UriKind.Relative), TestContext.Current.CancellationToken);
        using var unknown = await app.Client.GetAsync(new Uri($"/ingestions/{Guid.NewGuid()}", UriKind.Relative), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal(["dispatcher", "storage"], report.GetProperty("checks").EnumerateObject().Select(c => c.Name).Order());
        Assert.Equal(status, guessed);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("Unknown ingestion", (await unknown.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("title").GetString());
    }

    [Theory]
    [InlineData("/status/{id}")]
    [InlineData("/ingestions/{id}")]
    [InlineData("/windows")]
    [InlineData("/queue")]
    [InlineData("/")]
    public async Task HeadAnswersWhereGetDoesWithTheHeadersOnly(string path)
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });
        var ingestion = await app.SubmitAsync("LOW", 1, 2, 3, 4);
        var uri = new Uri(path.Replace("{id}", ingestion.ToString(), StringComparison.Ordinal), UriKind.Relative);

        using var get = await app.Client.GetAsync(uri, TestContext.Current.CancellationToken);
        using var head = await app.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, uri), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(get.Content.Headers.ContentType?.MediaType, head.Content.Headers.ContentType?.MediaType);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task EveryTimeTheApiWritesIsIsoUtcWithMilliseconds()
    {
        await using var app = new IngestionApp(new() { ["Ingestion:Window"] = "01:00:00", ["Upstream:SimulatedDelay"] = "00:00:00", ["Ingestion:ShutdownTimeout"] = "00:00:00" });
        var ingestion = await app.SubmitAsync("LOW", 1, 2, 3, 4);
        await Eventually.ReturnsAsync(() => app.GetJsonAsync("/windows"), w => w.GetProperty("windows").GetArrayLength() == 1 && w.GetProperty("windows")[0].GetProperty("state").GetString() == "completed", TimeSpan.FromSeconds(10), "the first window to finish");

        var queue = await app.GetJsonAsync("/queue");
        var window = (await app.GetJsonAsync("/windows")).GetProperty("windows")[0];
        var listed = (await app.GetJsonAsync("/ingestions")).GetProperty("ingestions")[0];
        var status = await app.StatusAsync(ingestion);
        var result = (await app.GetJsonAsync($"/ingestions/{ingestion}/results")).GetProperty("results")[0];

        string?[] times =
        [
            queue.GetProperty("now").GetString(), queue.GetProperty("next_admission_at").GetString(),
            window.GetProperty("started_at").GetString(), window.GetProperty("finished_at").GetString(),
            listed.GetProperty("created_at").GetString(), status.GetProperty("created_at").GetString(),
            status.GetProperty("batches")[0].GetProperty("completed_at").GetString(), result.GetProperty("fetched_at").GetString(),
        ];
        Assert.All(times, time => Assert.Matches(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", time));
    }

    [Fact]
    public async Task ReadinessTurns503WithTheReasonWhenTheDatabaseIsGone()
    {
        await using var app = new IngestionApp();
        using var live = await app.Client.GetAsync(new Uri("/health/live", UriKind.Relative), TestContext.Current.CancellationToken);
        using var ready = await app.Client.GetAsync(new Uri("/health/ready", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);

        foreach (var file in Directory.GetFiles(app.Database.Folder))
        {
            File.Delete(file);
        }

        using var gone = await app.Client.GetAsync(new Uri("/health/ready", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, gone.StatusCode);
        var report = await gone.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken);
        Assert.Equal("Unhealthy", report.GetProperty("checks").GetProperty("storage").GetProperty("status").GetString());
        Assert.Contains("does not answer", report.GetProperty("checks").GetProperty("storage").GetProperty("description").GetString(), StringComparison.Ordinal);
        using var stillLive = await app.Client.GetAsync(new Uri("/health/live", UriKind.Relative), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, stillLive.StatusCode);
    }

    [Fact]
    public async Task MetricsMoveAsWorkFlowsAndTheLimitIsNeverExceeded()
    {
        // A process of its own: meters are process-wide, and other tests' in-process servers would mix in.
        using var database = new TempDatabase();
        await using var service = await ServiceProcess.StartAsync(database.ConnectionString, Quick.ToDictionary(p => p.Key, p => p.Value!));

        // Exported from the start, at zero, so a dashboard's rate() has a series before the first window.
        var fresh = await MetricsAsync(service);
        foreach (var counter in (string[])["ingestion_windows_started_total", "ingestion_ids_fetched_total", "ingestion_ids_failed_total", "ingestion_ids_retried_total", "ingestion_upstream_pauses_total", "ingestion_limiter_violations"])
        {
            // Value() reads an absent series as 0, so the series' own line is looked for.
            Assert.Matches(new System.Text.RegularExpressions.Regex($@"(?m)^{counter}(\{{[^}}]*\}})? 0(\.0)?( \d+)?\r?$"), fresh);
        }

        await SubmitAsync(service, "HIGH", 1);
        await Eventually.ReturnsAsync(() => MetricsAsync(service), m => Value(m, "ingestion_windows_started_total") >= 1, TimeSpan.FromSeconds(10), "a first window");

        await SubmitAsync(service, "LOW", [.. Enumerable.Range(1, 30)]);
        var before = await Eventually.ReturnsAsync(() => MetricsAsync(service), m => Value(m, "ingestion_queue_waiting{ingestion_priority=\"LOW\"}") >= 6, TimeSpan.FromSeconds(10), "the LOW ids to show as waiting");
        var after = await Eventually.ReturnsAsync(() => MetricsAsync(service), m => Value(m, "ingestion_queue_waiting{ingestion_priority=\"LOW\"}") == 0 && Value(m, "ingestion_ids_fetched_total") == 31, TimeSpan.FromSeconds(30), "every id to be fetched");

        Assert.True(Value(after, "ingestion_windows_started_total") > Value(before, "ingestion_windows_started_total"));
        Assert.InRange(Value(after, "ingestion_limiter_max_ids_per_window"), 1, 3);
        Assert.Equal(0, Value(after, "ingestion_limiter_violations"));
        Assert.Equal(30, Value(after, "ingestion_wait_duration_seconds_count{ingestion_priority=\"LOW\"}"));
        Assert.Equal(1, Value(after, "ingestion_wait_duration_seconds_count{ingestion_priority=\"HIGH\"}"));
        Assert.Equal(31, Value(after, "ingestion_upstream_duration_seconds_count"));
        Assert.Equal(0, Value(after, "ingestion_ids_in_flight"));
        Assert.Contains("http_server_request_duration_seconds", after, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ATerminatedServiceFinishesItsWindowExitsCleanlyAndLeavesNothingInFlight()
    {
        using var database = new TempDatabase();
        var slow = new Dictionary<string, string> { ["Upstream:SimulatedDelay"] = "00:00:02" };
        Guid ingestion;
        await using (var service = await ServiceProcess.StartAsync(database.ConnectionString, slow))
        {
            using var response = await service.Client.PostAsJsonAsync("/ingest", new { ids = new[] { 1, 2, 3, 4 }, priority = "LOW" }, TestContext.Current.CancellationToken);
            ingestion = (await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("ingestion_id").GetGuid();
            await Eventually.ReturnsAsync(() => service.Client.GetFromJsonAsync<JsonElement>($"/status/{ingestion}", TestContext.Current.CancellationToken), s => s.GetProperty("status").GetString() == "triggered", TimeSpan.FromSeconds(10), "the first window");

            var exitCode = await service.TerminateAsync(TimeSpan.FromSeconds(20));

            Assert.True(exitCode == 0, $"exit code {exitCode}:\n{service.Output}");
        }

        Assert.Equal(0, database.Scalar("SELECT count(*) FROM windows WHERE state <> 1"));
        Assert.Equal(3, database.Scalar("SELECT count(*) FROM results"));
        await using var restarted = await ServiceProcess.StartAsync(database.ConnectionString);
        var status = await restarted.Client.GetFromJsonAsync<JsonElement>($"/status/{ingestion}", TestContext.Current.CancellationToken);
        Assert.Equal("completed", status.GetProperty("batches")[0].GetProperty("status").GetString());
    }

    [Fact]
    public async Task TheEstimatedStartOfAWaitingBatchMatchesItsActualStartWithinASecond()
    {
        await using var app = new IngestionApp(Quick);
        var ingestion = await app.SubmitAsync("MEDIUM", [.. Enumerable.Range(1, 12)]);

        var waiting = await app.StatusAsync(ingestion);
        var estimates = waiting.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("estimated_start_at")).ToList();
        var done = await Eventually.ReturnsAsync(() => app.StatusAsync(ingestion), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(20), "the ingestion to complete");

        var actual = done.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("triggered_at").GetDateTime()).ToList();
        // Batches that had started by the first read have no estimate: a loaded machine can take a second to
        // answer it. The last batch starts three seconds in, so a first read within that still sees it waiting.
        var estimated = Enumerable.Range(1, actual.Count - 1).Where(batch => estimates[batch].ValueKind == JsonValueKind.String).ToList();
        Assert.NotEmpty(estimated);
        foreach (var batch in estimated)
        {
            var estimate = estimates[batch].GetDateTime();
            Assert.True(Math.Abs((actual[batch] - estimate).TotalSeconds) < 1, $"batch {batch}: estimated {estimate:O}, started {actual[batch]:O}");
        }
    }

    private static async Task SubmitAsync(ServiceProcess service, string priority, params int[] ids)
    {
        using var response = await service.Client.PostAsJsonAsync("/ingest", new { ids, priority }, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    private static async Task<string> MetricsAsync(ServiceProcess service)
    {
        using var response = await service.Client.GetAsync(new Uri("/metrics", UriKind.Relative), TestContext.Current.CancellationToken);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
    }

    /// <summary>The value of one series, by its name and labels (the scope label ignored); 0 if absent.</summary>
    private static double Value(string metrics, string series)
    {
        var name = series.Split('{')[0];
        var labels = series.Contains('{', StringComparison.Ordinal) ? series[(series.IndexOf('{', StringComparison.Ordinal) + 1)..^1] : null;
        foreach (var line in metrics.Split('\n'))
        {
            if (!line.StartsWith(name + "{", StringComparison.Ordinal) && !line.StartsWith(name + " ", StringComparison.Ordinal))
            {
                continue;
            }

            if (labels is not null && !line.Contains(labels, StringComparison.Ordinal))
            {
                continue;
            }

            return double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }

        return 0;
    }
}
