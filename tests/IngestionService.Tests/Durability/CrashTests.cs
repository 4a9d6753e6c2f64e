using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Durability;

/// <summary>The service as a real process, killed with SIGKILL mid-window and started again on the same file.</summary>
public sealed class CrashTests : IDisposable
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    // Fetches take most of the window, so the kill lands mid-window even on a loaded machine.
    private static readonly Dictionary<string, string> SlowFetches = new() { ["Upstream:SimulatedDelay"] = "00:00:03" };

    // After the restart the refetch of the killed window must still be running when its status is read,
    // however long the new process takes to start on a loaded machine (seconds, when every test runs at once).
    private static readonly Dictionary<string, string> SlowerFetches = new() { ["Upstream:SimulatedDelay"] = "00:00:08" };
    private readonly TempDatabase _database = new();

    public void Dispose() => _database.Dispose();

    [Fact]
    public async Task AKilledServiceLosesNothingRefetchesWhatWasInFlightAndKeepsTheRateLimit()
    {
        Guid first, acknowledgedJustBeforeTheCrash;
        await using (var doomed = await ServiceProcess.StartAsync(_database.ConnectionString, SlowFetches))
        {
            first = await SubmitAsync(doomed.Client, "MEDIUM", 1, 2, 3, 4, 5, 6, 7, 8, 9);

            // Wait until the second window is in flight, then kill the process in the middle of it.
            await Eventually.ReturnsAsync(() => StatusAsync(doomed.Client, first), s => BatchStatus(s, 1) == "triggered", TimeSpan.FromSeconds(15), "the second window to start");
            acknowledgedJustBeforeTheCrash = await SubmitAsync(doomed.Client, "LOW", 100);
            await doomed.KillAsync();
        }

        await using var revived = await ServiceProcess.StartAsync(_database.ConnectionString, SlowerFetches);
        var afterRestart = await StatusAsync(revived.Client, first);
        Assert.Equal("completed", BatchStatus(afterRestart, 0));
        Assert.Equal("triggered", BatchStatus(afterRestart, 1));
        Assert.Equal(HttpStatusCode.OK, (await revived.Client.GetAsync(new Uri($"/status/{acknowledgedJustBeforeTheCrash}", UriKind.Relative), TestContext.Current.CancellationToken)).StatusCode);

        await Eventually.ReturnsAsync(() => StatusAsync(revived.Client, acknowledgedJustBeforeTheCrash), s => s.GetProperty("status").GetString() == "completed", TimeSpan.FromSeconds(60), "all work to finish after the restart");
        Assert.Equal("completed", (await StatusAsync(revived.Client, first)).GetProperty("status").GetString());

        var log = await revived.Client.GetFromJsonAsync<JsonElement>("/windows?limit=100", TestContext.Current.CancellationToken);
        var windows = log.GetProperty("windows").EnumerateArray().Reverse().Select(w => (
            Start: w.GetProperty("started_at").GetDateTime(),
            State: w.GetProperty("state").GetString(),
            Ids: w.GetProperty("items").EnumerateArray().SelectMany(i => i.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())).ToArray())).ToList();

        Assert.Equal(
            [("completed", new[] { 1, 2, 3 }), ("abandoned", [4, 5, 6]), ("completed", [4, 5, 6]), ("completed", [7, 8, 9]), ("completed", [100])],
            windows.Select(w => (w.State, w.Ids)));
        Assert.All(windows.Zip(windows.Skip(1)), pair => Assert.True(
            pair.Second.Start - pair.First.Start >= Window,
            $"windows started {pair.First.Start:O} and {pair.Second.Start:O}, closer than {Window}"));
        Assert.Equal(10, _database.Scalar("SELECT count(*) FROM results"));
    }

    private static async Task<Guid> SubmitAsync(HttpClient client, string priority, params int[] ids)
    {
        using var response = await client.PostAsJsonAsync("/ingest", new { ids, priority }, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("ingestion_id").GetGuid();
    }

    private static Task<JsonElement> StatusAsync(HttpClient client, Guid ingestionId) =>
        client.GetFromJsonAsync<JsonElement>($"/status/{ingestionId}", TestContext.Current.CancellationToken);

    private static string? BatchStatus(JsonElement status, int index) =>
        status.GetProperty("batches")[index].GetProperty("status").GetString();
}
