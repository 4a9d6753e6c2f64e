using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Api;

/// <summary>
/// The same HTTP service on PostgreSQL: the brief's example, on a 2 s window with 0.2 s fetches so it
/// takes five seconds (a machine that stalls past the first window has the HIGH request go first at the next one), answers with the same windows and statuses as on SQLite. Only the order and the
/// least spacing are checked here; exact timing is the SQLite real-time test's job.
/// </summary>
public sealed class PostgresHttpTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task TheBriefsExampleOnAShortWindowRunsAs123Then678Then945()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        await using var app = IngestionApp.OnPostgres(database, new()
        {
            ["Ingestion:Window"] = "00:00:02",
            ["Upstream:SimulatedDelay"] = "00:00:00.200",
        });
        _ = app.Client;

        // The HIGH request comes while the first window runs, as at T4 in the brief.
        var medium = await app.SubmitAsync("MEDIUM", 1, 2, 3, 4, 5);
        await Eventually.ReturnsAsync(() => app.StatusAsync(medium), s => s.GetProperty("status").GetString() == "triggered", TimeSpan.FromSeconds(10), "the first window to start");
        var high = await app.SubmitAsync("HIGH", 6, 7, 8, 9);

        var highStatus = await Eventually.ReturnsAsync(() => app.StatusAsync(high), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(15), "the HIGH request to complete");
        var mediumStatus = await Eventually.ReturnsAsync(() => app.StatusAsync(medium), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(15), "the MEDIUM request to complete");

        var windows = (await app.GetJsonAsync("/windows?limit=10")).GetProperty("windows").EnumerateArray().Reverse().ToList();
        var starts = windows.Select(w => w.GetProperty("started_at").GetDateTime()).ToList();
        // A machine that stalls a whole window before the HIGH request is sent has the second window start
        // without it; it then goes first at the next one. Either way, by the time each window started.
        var overtook = highStatus.GetProperty("created_at").GetDateTime() < starts[1];
        int[][] expected = overtook ? [[1, 2, 3], [6, 7, 8], [9, 4, 5]] : [[1, 2, 3], [4, 5], [6, 7, 8], [9]];
        Assert.Equal(
            expected,
            windows.Select(w => w.GetProperty("items").EnumerateArray().SelectMany(i => i.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())).ToArray()));
        Assert.All(starts.Zip(starts.Skip(1)), pair => Assert.True(pair.Second - pair.First >= Window, $"windows started {pair.First:O} and {pair.Second:O}"));
        Assert.Equal([[1, 2, 3], [4, 5]], mediumStatus.GetProperty("batches").EnumerateArray().Select(b => b.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32()).ToArray()));
        Assert.Equal(starts[overtook ? 2 : 1], mediumStatus.GetProperty("batches")[1].GetProperty("triggered_at").GetDateTime());
        Assert.True(mediumStatus.GetProperty("created_at").GetDateTime() <= starts[0]);
    }

    [Fact]
    public async Task APauseOrAResumeThroughOneInstanceIsHonouredByTheOther()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        Dictionary<string, string?> Settings() => new()
        {
            ["Storage:Provider"] = "Postgres",
            ["Storage:ConnectionString"] = database.ConnectionString,
            ["Ingestion:Window"] = "00:00:00.200",
            ["Ingestion:PollInterval"] = "00:00:00.100",
            ["Upstream:SimulatedDelay"] = "00:00:00",
        };
        await using var first = new IngestionApp(Settings());
        await using var second = new IngestionApp(Settings());

        using (var paused = await first.Client.PostAsync(new Uri("/queue/pause", UriKind.Relative), null, TestContext.Current.CancellationToken))
        {
            paused.EnsureSuccessStatusCode();
        }

        // Submitted to the other instance, whose dispatcher is woken at once: it must not start a window.
        var ingestion = await second.SubmitAsync("MEDIUM", 1, 2, 3);
        var secondSees = await second.GetJsonAsync("/queue");
        await Task.Delay(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken); // ten polls of each instance, five windows' time
        var whilePaused = await first.StatusAsync(ingestion);

        using (var resumed = await second.Client.PostAsync(new Uri("/queue/resume", UriKind.Relative), null, TestContext.Current.CancellationToken))
        {
            resumed.EnsureSuccessStatusCode();
        }

        var done = await Eventually.ReturnsAsync(() => first.StatusAsync(ingestion), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(10), "the resumed queue to run on either instance");

        Assert.True(secondSees.GetProperty("paused").GetBoolean());
        Assert.Equal(("yet_to_start", true), (whilePaused.GetProperty("status").GetString(), whilePaused.GetProperty("queue_paused").GetBoolean()));
        Assert.Equal(3, done.GetProperty("completed_ids").GetInt32());
    }

    [Fact]
    public async Task ALimitSetThroughOneInstanceIsAppliedByTheOtherFromItsNextAdmission()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        Dictionary<string, string?> Settings() => new()
        {
            ["Storage:Provider"] = "Postgres",
            ["Storage:ConnectionString"] = database.ConnectionString,
            ["Ingestion:Window"] = "00:00:00.100",
            ["Ingestion:PollInterval"] = "00:00:00.050",
            ["Upstream:SimulatedDelay"] = "00:00:00",
        };
        await using var first = new IngestionApp(Settings());
        await using var second = new IngestionApp(Settings());

        using (var set = await first.Client.PutAsync(new Uri("/limits", UriKind.Relative), new StringContent("""{"batch_size": 1, "window": "00:00:00.400"}""", System.Text.Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken))
        {
            set.EnsureSuccessStatusCode();
        }

        var ingestion = await second.SubmitAsync("MEDIUM", 1, 2, 3, 4);
        await Eventually.ReturnsAsync(() => second.StatusAsync(ingestion), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(15), "the ingestion to finish under the new limit");
        var windows = (await first.GetJsonAsync("/windows")).GetProperty("windows").EnumerateArray()
            .Select(w => (Start: w.GetProperty("started_at").GetDateTime(), Ids: w.GetProperty("items").EnumerateArray().Sum(i => i.GetProperty("ids").GetArrayLength())))
            .Reverse().ToList();
        var secondLimits = await second.GetJsonAsync("/limits");
        var secondQueue = await second.GetJsonAsync("/queue");

        Assert.Equal([1, 1, 1, 1], windows.Select(w => w.Ids));
        Assert.All(windows.Zip(windows.Skip(1)), pair => Assert.True(pair.Second.Start - pair.First.Start >= TimeSpan.FromMilliseconds(400), $"windows {pair.First.Start:O} and {pair.Second.Start:O} closer than 400 ms"));
        Assert.Equal(("override", 1, "00:00:00.400"), (secondLimits.GetProperty("source").GetString(), secondLimits.GetProperty("batch_size").GetInt32(), secondLimits.GetProperty("window").GetString()));
        Assert.Equal((1, 0.4), (secondQueue.GetProperty("batch_size").GetInt32(), secondQueue.GetProperty("window_seconds").GetDouble()));
    }
}
