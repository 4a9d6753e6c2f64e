using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>
/// The whole service in <c>Upstream:Mode=Http</c> with the real 5 s window, against a real HTTP upstream
/// on loopback that fails in every way the issue names, in real time: the limit holds at the upstream
/// itself while ids are retried, a 429 pauses everything for its Retry-After, and failures are reported.
/// </summary>
[Collection(nameof(RunsAlone))]
public sealed class HttpUpstreamEndToEndTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task RetriesStayUnderTheLimitA429PausesEverythingAndFailuresAreReported()
    {
        // T0 [1,2,3]: 2 fails with a 500 and is due again after 1 s.
        // T5 [2,4,5]: 2 succeeds, 4 gets a 429 asking for 8 s, 5 fails with a 500 (its first attempt).
        // Paused until about T13, then [4,5,6]: 4 succeeds, 5 fails again and is given up (2 attempts), 6 is a 404.
        await using var upstream = await FakeUpstreamServer.StartAsync((id, calls) => (id, calls) switch
        {
            (2, 0) => FakeAnswer.Fail(500),
            (4, 0) => FakeAnswer.Fail(429, "8"),
            (5, _) => FakeAnswer.Fail(500),
            (6, _) => FakeAnswer.Fail(404),
            _ => FakeAnswer.Ok,
        });
        await using var app = new IngestionApp(new()
        {
            ["Upstream:Mode"] = "Http",
            ["Upstream:BaseUrl"] = upstream.BaseAddress.ToString(),
            ["Upstream:MaxAttempts"] = "2",
            ["Upstream:RetryBaseDelay"] = "00:00:01",
        });

        var ingestion = await app.SubmitAsync("MEDIUM", 1, 2, 3, 4, 5, 6);
        var paused = await Eventually.ReturnsAsync(() => app.StatusAsync(ingestion), s => s.TryGetProperty("upstream_paused_until", out _), TimeSpan.FromSeconds(15), "the 429 to pause the service");
        var status = await Eventually.ReturnsAsync(() => app.StatusAsync(ingestion), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(30), "the ingestion to complete");

        // The upstream itself never saw more than 3 calls in any 5 s, retries included.
        Assert.Equal(9, upstream.Calls.Count);
        Assert.True(upstream.MostCallsWithin(Window) <= 3, $"the upstream saw {upstream.MostCallsWithin(Window)} calls within 5 s");

        // Nothing was called during the pause the 429 asked for.
        var throttledAt = upstream.Calls.Single(call => call.Id == 4 && call == upstream.Calls.First(c => c.Id == 4)).ArrivedAt;
        var afterPause = upstream.Calls.Where(call => call.ArrivedAt > throttledAt.AddMilliseconds(500)).Min(call => call.ArrivedAt);
        Assert.True(afterPause - throttledAt >= TimeSpan.FromSeconds(7.9), $"a call came {afterPause - throttledAt} after the 429 that asked for 8 s");
        var pausedUntil = paused.GetProperty("upstream_paused_until").GetDateTimeOffset();
        Assert.InRange(pausedUntil - throttledAt, TimeSpan.FromSeconds(7.9), TimeSpan.FromSeconds(9));

        // Failures are counted, per ingestion and per batch, and each batch still reached its final state.
        Assert.Equal((6, 2), (status.GetProperty("completed_ids").GetInt32(), status.GetProperty("failed_ids").GetInt32()));
        Assert.Equal(["completed", "completed"], status.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("status").GetString()));
        Assert.Equal([0, 2], status.GetProperty("batches").EnumerateArray().Select(b => b.TryGetProperty("failed_ids", out var n) ? n.GetInt32() : 0));
        Assert.False(status.TryGetProperty("upstream_paused_until", out _), "the pause is shown only while it lasts");

        // The results say what happened to each id.
        var results = (await app.GetJsonAsync($"/ingestions/{ingestion}/results")).GetProperty("results").EnumerateArray().ToDictionary(r => r.GetProperty("id").GetInt32());
        Assert.Equal(("succeeded", 200, 2), Describe(results[2]));
        Assert.Equal("""{"id":2,"data":"upstream"}""", results[2].GetProperty("body").GetString());
        Assert.Equal(("succeeded", 200, 2), Describe(results[4]));
        Assert.Equal(("failed", 500, 2), Describe(results[5]));
        Assert.Contains("gave up after 2 failed attempts", results[5].GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(("failed", 404, 1), Describe(results[6]));
        Assert.Equal(("succeeded", 200, 1), Describe(results[1]));

        // The window log shows which window's answers paused the service.
        var windows = (await app.GetJsonAsync("/windows")).GetProperty("windows").EnumerateArray().Reverse().ToList();
        Assert.Equal(3, windows.Count);
        Assert.Equal([false, true, false], windows.Select(w => w.TryGetProperty("paused_until", out _)));

        // And what each call came to, id by id: the retry, the 429 and both kinds of failure.
        Assert.Equal(
            [
                "1 succeeded, 2 retrying, 3 succeeded",
                "2 succeeded, 4 throttled, 5 retrying",
                "4 succeeded, 5 failed, 6 failed",
            ],
            windows.Select(w => string.Join(", ", w.GetProperty("items").EnumerateArray().SelectMany(item =>
                item.GetProperty("ids").EnumerateArray().Zip(item.GetProperty("outcomes").EnumerateArray(), (id, outcome) => $"{id.GetInt32()} {outcome.GetString()}")))));
    }

    private static (string?, int, int) Describe(JsonElement result) =>
        (result.GetProperty("state").GetString(), result.GetProperty("http_status").GetInt32(), result.GetProperty("attempts").GetInt32());
}
