using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Scheduling;

/// <summary>
/// The brief's example in real time, with the default settings (3 ids per 5 s window, 1 s per fetch),
/// over real HTTP against a real SQLite file. Real time is the point here: about 16 seconds.
/// </summary>
[Collection(nameof(RunsAlone))]
public sealed class BriefExampleRealTimeTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    /// <summary>How late a window may start against its earliest allowed start on a busy 2-core machine.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromMilliseconds(500);

    [Fact]
    public async Task T0MediumAndT4HighAreProcessedAs123Then678Then945()
    {
        await using var app = new IngestionApp();
        _ = app.Client; // start the server before the clock starts

        var t0 = DateTime.UtcNow;
        var medium = await app.SubmitAsync("MEDIUM", 1, 2, 3, 4, 5);
        var acknowledged = DateTime.UtcNow;
        await Task.Delay(t0 + TimeSpan.FromSeconds(4) - DateTime.UtcNow, TestContext.Current.CancellationToken);
        var high = await app.SubmitAsync("HIGH", 6, 7, 8, 9);

        await Eventually.ReturnsAsync(() => app.StatusAsync(medium), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(30), "the MEDIUM request to complete");
        await Eventually.ReturnsAsync(() => app.StatusAsync(high), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(5), "the HIGH request to complete");

        var log = await app.GetJsonAsync("/windows?limit=10");
        var windows = log.GetProperty("windows").EnumerateArray().Reverse().ToList();
        Assert.Equal([[1, 2, 3], [6, 7, 8], [9, 4, 5]], windows.Select(Ids));

        var starts = windows.Select(w => w.GetProperty("started_at").GetDateTime()).ToList();
        Assert.InRange(starts[0], t0, acknowledged + Slack);                   // an idle service starts at once
        Assert.InRange(starts[1] - starts[0], Window, Window + Slack);        // T5
        Assert.InRange(starts[2] - starts[1], Window, Window + Slack);        // T10

        // The status answers tell the same story, batch by batch.
        var mediumStatus = await app.StatusAsync(medium);
        var highStatus = await app.StatusAsync(high);
        Assert.Equal(starts[0], TriggeredAt(mediumStatus, 0));
        Assert.Equal(starts[1], TriggeredAt(highStatus, 0));
        Assert.Equal(starts[2], TriggeredAt(highStatus, 1));
        Assert.Equal(starts[2], TriggeredAt(mediumStatus, 1));
    }

    private static int[] Ids(JsonElement window) =>
        [.. window.GetProperty("items").EnumerateArray().SelectMany(i => i.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32()))];

    private static DateTime TriggeredAt(JsonElement status, int batch) =>
        status.GetProperty("batches")[batch].GetProperty("triggered_at").GetDateTime();
}
