using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>The server-sent event streams over real HTTP: one ingestion's, with resume, and the whole service's, on one instance and across instances.</summary>
public sealed class EventStreamTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static Dictionary<string, string?> Settings(string window = "00:00:00.300") => new()
    {
        ["Ingestion:Window"] = window,
        ["Upstream:SimulatedDelay"] = "00:00:00.050",
    };

    private static async Task PostAsync(IngestionApp app, string path)
    {
        using var response = await app.Client.PostAsync(new Uri(path, UriKind.Relative), null, Token);
        response.EnsureSuccessStatusCode();
    }

    private static List<(string Type, int Batch)> Batches(IEnumerable<SseFrame> frames) =>
        [.. frames.Where(f => f.Type is "batch.started" or "batch.completed").Select(f => (f.Type!, JsonDocument.Parse(f.Data!).RootElement.GetProperty("batch").GetInt32()))];

    [Fact]
    public async Task AnIngestionsStreamSendsItsStatusThenEachBatchStartingAndCompletingThenCompletedAndCloses()
    {
        await using var app = new IngestionApp(Settings());
        await PostAsync(app, "/queue/pause"); // so the stream opens before anything starts
        var id = await app.SubmitAsync("HIGH", 1, 2, 3, 4, 5, 6, 7);
        await using var stream = await SseClient.OpenAsync(app.Client, $"/ingestions/{id}/events");
        Assert.Equal("text/event-stream", stream.Response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("no-cache", stream.Response.Headers.CacheControl?.ToString(), StringComparison.Ordinal);
        var first = await stream.NextAsync(Deadline);

        await PostAsync(app, "/queue/resume");
        var frames = await stream.UntilAsync("completed", Deadline);
        var end = await stream.NextAsync(Deadline);

        Assert.Equal(("status", "0."), (first!.Type, first.Id));
        Assert.Equal("yet_to_start", JsonDocument.Parse(first.Data!).RootElement.GetProperty("status").GetString());
        Assert.Equal(
            [("batch.started", 0), ("batch.completed", 0), ("batch.started", 1), ("batch.completed", 1), ("batch.started", 2), ("batch.completed", 2)],
            Batches(frames));
        Assert.Equal(["1.", "1.0", "2.0", "2.0-1", "3.0-1", "3.0-2", "done"], frames.Select(f => f.Id));
        var last = JsonDocument.Parse(frames[^1].Data!).RootElement;
        Assert.Equal(("completed", 7), (last.GetProperty("status").GetString(), last.GetProperty("completed_ids").GetInt32()));
        var started = JsonDocument.Parse(frames[0].Data!).RootElement;
        Assert.Equal([1, 2, 3], started.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()));
        Assert.Equal(("triggered", id), (started.GetProperty("status").GetString(), started.GetProperty("ingestion_id").GetGuid()));
        Assert.Null(end); // the server closed the stream
    }

    [Fact]
    public async Task AReconnectWithLastEventIdGetsExactlyWhatItMissedAndOnceItSawTheEnd204()
    {
        await using var app = new IngestionApp(Settings("00:00:00.100"));
        var id = await app.SubmitAsync("LOW", 1, 2, 3, 4, 5, 6, 7);
        await Eventually.ReturnsAsync(() => app.StatusAsync(id), s => s.GetProperty("status").GetString() == "completed", Deadline, "the ingestion to complete");

        await using var resumed = await SseClient.OpenAsync(app.Client, $"/ingestions/{id}/events", lastEventId: "1.");
        var missed = await resumed.UntilAsync("completed", Deadline);
        await using var afterEnd = await SseClient.OpenAsync(app.Client, $"/ingestions/{id}/events", lastEventId: "done");
        await using var ahead = await SseClient.OpenAsync(app.Client, $"/ingestions/{id}/events", lastEventId: "4.");
        await using var garbled = await SseClient.OpenAsync(app.Client, $"/ingestions/{id}/events", lastEventId: "three");
        await using var unknown = await SseClient.OpenAsync(app.Client, $"/ingestions/{Guid.CreateVersion7()}/events");

        // No status event on a resume: what it missed, then the end.
        Assert.Equal([("batch.completed", 0), ("batch.started", 1), ("batch.completed", 1), ("batch.started", 2), ("batch.completed", 2)], Batches(missed));
        Assert.Equal(["1.0", "2.0", "2.0-1", "3.0-1", "3.0-2", "done"], missed.Select(f => f.Id));
        Assert.Equal(HttpStatusCode.NoContent, afterEnd.Response.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, ahead.Response.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, garbled.Response.StatusCode);
        Assert.Equal("application/problem+json", garbled.Response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, unknown.Response.StatusCode);
    }

    [Fact]
    public async Task AnIdleStreamSendsHeartbeatsAndStreamsBeyondTheCapAre503()
    {
        await using var app = new IngestionApp(new(Settings()) { ["Events:Heartbeat"] = "00:00:00.200", ["Events:MaxStreams"] = "2" });
        await PostAsync(app, "/queue/pause");
        var id = await app.SubmitAsync("LOW", 1);
        await using var waiting = await SseClient.OpenAsync(app.Client, $"/ingestions/{id}/events");
        await using var service = await SseClient.OpenAsync(app.Client, "/events");
        Assert.Equal("status", (await waiting.NextAsync(Deadline))!.Type);
        Assert.Equal("queue.depth", (await service.NextAsync(Deadline))!.Type);

        var heartbeat = await waiting.NextAsync(Deadline);
        using var third = await app.Client.GetAsync(new Uri("/events", UriKind.Relative), HttpCompletionOption.ResponseHeadersRead, Token);

        Assert.Equal(("heartbeat", null), (heartbeat!.Comment, heartbeat.Type));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, third.StatusCode);
        Assert.Equal("5", third.Headers.RetryAfter?.ToString());
        Assert.Equal("application/problem+json", third.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task TheServiceStreamShowsTheQueueWindowsAndAnOperatorsActions()
    {
        await using var app = new IngestionApp(Settings());
        await using var stream = await SseClient.OpenAsync(app.Client, "/events");
        var depth = await stream.NextAsync(Deadline);

        await app.SubmitAsync("HIGH", 1, 2, 3, 4);
        var firstWindow = await stream.UntilAsync("window.finished", Deadline);
        await PostAsync(app, "/queue/pause");
        var paused = await stream.UntilAsync("queue.paused", Deadline);

        Assert.Equal(("queue.depth", 0L), (depth!.Type, JsonDocument.Parse(depth.Data!).RootElement.GetProperty("total").GetInt64()));
        var started = JsonDocument.Parse(firstWindow.Single(f => f.Type == "window.started").Data!).RootElement;
        Assert.Equal((3, 0, 3), (started.GetProperty("ids").GetInt32(), started.GetProperty("items")[0].GetProperty("first_position").GetInt32(), started.GetProperty("items")[0].GetProperty("count").GetInt32()));
        var finished = JsonDocument.Parse(firstWindow[^1].Data!).RootElement;
        Assert.Equal((started.GetProperty("seq").GetInt64(), "completed", 3), (finished.GetProperty("seq").GetInt64(), finished.GetProperty("state").GetString(), finished.GetProperty("succeeded").GetInt32()));
        Assert.All(firstWindow.Concat(paused), f => Assert.Matches("^[0-9a-f]{8}-[1-9][0-9]*$", f.Id!));
        Assert.Equal("queue.paused", paused[^1].Type);

        // A reconnect to the same instance replays what came after its last id; any other id starts afresh.
        var startedId = firstWindow.Single(f => f.Type == "window.started").Id;
        await using var resumed = await SseClient.OpenAsync(app.Client, "/events", lastEventId: startedId);
        await using var foreign = await SseClient.OpenAsync(app.Client, "/events", lastEventId: "-5");
        Assert.Equal(firstWindow.SkipWhile(f => f.Id != startedId).Skip(1).Select(f => f.Id), (await resumed.UntilAsync("window.finished", Deadline)).Select(f => f.Id));
        Assert.Equal("queue.depth", (await foreign.NextAsync(Deadline))!.Type);
    }

    [Fact]
    public async Task OnPostgreSqlEveryInstancesStreamSeesEveryWindowWhicheverInstanceRanIt()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        await using var first = IngestionApp.OnPostgres(database, Settings());
        await using var second = IngestionApp.OnPostgres(database, Settings());
        _ = first.Client;
        await using var watching = await SseClient.OpenAsync(second.Client, "/events");
        Assert.Equal("queue.depth", (await watching.NextAsync(Deadline))!.Type);

        var id = await first.SubmitAsync("MEDIUM", [.. Enumerable.Range(1, 12)]);
        await Eventually.ReturnsAsync(() => first.StatusAsync(id), s => s.GetProperty("status").GetString() == "completed", Deadline, "the ingestion to complete");
        var windows = (await first.GetJsonAsync("/windows?limit=10")).GetProperty("windows").EnumerateArray().Select(w => w.GetProperty("seq").GetInt64()).ToHashSet();

        var seen = new HashSet<long>();
        while (!windows.IsSubsetOf(seen))
        {
            var frame = await watching.NextAsync(Deadline);
            if (frame?.Type == "window.finished")
            {
                seen.Add(JsonDocument.Parse(frame.Data!).RootElement.GetProperty("seq").GetInt64());
            }
        }

        Assert.Equal(4, windows.Count);
        Assert.Superset(windows, seen);
    }
}
