using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>
/// The same HTTP service on PostgreSQL: the brief's example, on a 2 s window with 0.2 s fetches so it
/// takes five seconds (and a loaded machine still submits the HIGH request inside the first window), answers with the same windows and statuses as on SQLite. Only the order and the
/// least spacing are checked here; exact timing is the SQLite real-time test's job.
/// </summary>
public sealed class PostgresHttpTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task TheBriefsExampleOnAShortWindowRunsAs123Then678Then945()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        await using var app = new IngestionApp(new()
        {
            ["Storage:Provider"] = "Postgres",
            ["Storage:ConnectionString"] = database.ConnectionString,
            ["Ingestion:Window"] = "00:00:02",
            ["Upstream:SimulatedDelay"] = "00:00:00.200",
        });
        _ = app.Client;

        // The HIGH request comes while the first window runs, as at T4 in the brief.
        var medium = await app.SubmitAsync("MEDIUM", 1, 2, 3, 4, 5);
        await Eventually.ReturnsAsync(() => app.StatusAsync(medium), s => s.GetProperty("status").GetString() == "triggered", TimeSpan.FromSeconds(10), "the first window to start");
        var high = await app.SubmitAsync("HIGH", 6, 7, 8, 9);

        var mediumStatus = await Eventually.ReturnsAsync(() => app.StatusAsync(medium), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(15), "the MEDIUM request to complete");
        var highStatus = await app.StatusAsync(high);

        var windows = (await app.GetJsonAsync("/windows?limit=10")).GetProperty("windows").EnumerateArray().Reverse().ToList();
        Assert.Equal(
            [[1, 2, 3], [6, 7, 8], [9, 4, 5]],
            windows.Select(w => w.GetProperty("items").EnumerateArray().SelectMany(i => i.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())).ToArray()));
        var starts = windows.Select(w => w.GetProperty("started_at").GetDateTime()).ToList();
        Assert.All(starts.Zip(starts.Skip(1)), pair => Assert.True(pair.Second - pair.First >= Window, $"windows started {pair.First:O} and {pair.Second:O}"));
        Assert.Equal("completed", highStatus.GetProperty("status").GetString());
        Assert.Equal([[1, 2, 3], [4, 5]], mediumStatus.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32()).ToArray()));
        Assert.Equal(starts[2], mediumStatus.GetProperty("batches")[1].GetProperty("triggered_at").GetDateTime());
        Assert.True(mediumStatus.GetProperty("created_at").GetDateTime() <= starts[0]);
    }
}
