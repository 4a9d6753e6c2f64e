using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Durability;

/// <summary>
/// Three real service processes on one PostgreSQL database behave as one service: one queue in one
/// global order, one rate limit, and when the instance that is fetching is killed with SIGKILL, the
/// others take its window back after its lease and finish the work.
/// </summary>
[Collection(nameof(RunsAlone))]
public sealed class SeveralInstancesTests
{
    // Two seconds: eight submissions must fit in one window on a loaded 2-core machine.
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <summary>How late a step may be on a busy 2-core machine, on top of what the design promises.</summary>
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(1);

    private static readonly Dictionary<string, string> Settings = new()
    {
        ["Storage:Provider"] = "Postgres",
        ["Ingestion:Window"] = "00:00:02",
        ["Ingestion:Lease"] = "00:00:03",
        ["Ingestion:PollInterval"] = "00:00:00.200",
        // Fetches fill most of each window, so the kill lands mid-window even when the machine is slow to deliver it.
        ["Upstream:SimulatedDelay"] = "00:00:01.500",
    };

    [Fact]
    public async Task ThreeInstancesShareOneOrderAndOneLimitAndFinishTheWorkWhenTheFetchingOneIsKilled()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        var instances = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => ServiceProcess.StartAsync(database.ConnectionString, Settings)));
        try
        {
            // Warm each instance's submit path, so that the timed part below is not spent compiling it.
            foreach (var instance in instances)
            {
                using var warmUp = await instance.Client.PostAsJsonAsync("/ingest", new { ids = Array.Empty<int>(), priority = "LOW" }, TestContext.Current.CancellationToken);
                Assert.Equal(HttpStatusCode.UnprocessableEntity, warmUp.StatusCode);
            }

            // The blocker takes the first window at once; everything after it is submitted within that
            // window, spread over all three instances, so the order of the rest is fully determined.
            var blocker = await SubmitAsync(instances[0], "LOW", 1000);
            await Eventually.ReturnsAsync(() => database.ScalarAsync<long>("SELECT count(*) FROM windows"), count => count > 0, TimeSpan.FromSeconds(10), "the blocker's window to start");
            (int Instance, string Priority, int[] Ids)[] requests =
            [
                (1, "MEDIUM", [1, 2, 3, 4]), (2, "LOW", [5, 6, 7]), (0, "HIGH", [8, 9]), (1, "MEDIUM", [10, 11]),
                (2, "HIGH", [12, 13, 14, 15]), (0, "LOW", [16]), (1, "HIGH", [17, 18, 19]), (2, "MEDIUM", [20, 21, 22]),
            ];
            // In waves of distinct priorities, each wave's requests at once: the order within a priority
            // (all the expected order depends on) is kept, and the eight fit in the blocker's window even
            // on a loaded machine (one at a time, they once took longer than the window in CI).
            var submitted = new (Guid Id, int Instance)[requests.Length];
            var wave = new List<int>();
            for (var next = 0; next < requests.Length; next++)
            {
                if (wave.Any(index => requests[index].Priority == requests[next].Priority))
                {
                    await SubmitWaveAsync(wave);
                    wave.Clear();
                }

                wave.Add(next);
            }

            await SubmitWaveAsync(wave);

            async Task SubmitWaveAsync(List<int> indexes) =>
                await Task.WhenAll(indexes.Select(async index =>
                    submitted[index] = (await SubmitAsync(instances[requests[index].Instance], requests[index].Priority, requests[index].Ids), requests[index].Instance)));

            int[][] expected =
            [
                .. requests.Select((request, index) => (request, index))
                    .OrderBy(r => r.request.Priority switch { "HIGH" => 0, "MEDIUM" => 1, _ => 2 })
                    .ThenBy(r => r.index)
                    .SelectMany(r => r.request.Ids)
                    .Chunk(3),
            ];

            // Kill whichever instance runs the fourth window, in the middle of its fetches.
            var running = await Eventually.ReturnsAsync(
                () => database.ScalarAsync<string?>("SELECT seq || ' ' || owner FROM windows WHERE state = 0 AND seq >= 4"),
                row => row is not null,
                TimeSpan.FromSeconds(15),
                "the fourth window to start");
            var killedSeq = long.Parse(running!.Split(' ')[0], CultureInfo.InvariantCulture);
            var ownerPid = int.Parse(running.Split(' ')[1].Split(':')[1], CultureInfo.InvariantCulture);
            var doomed = Assert.Single(instances, instance => instance.ProcessId == ownerPid);
            await doomed.KillAsync();
            var killedAt = DateTime.UtcNow;
            Assert.Equal(0, await database.ScalarAsync<short>($"SELECT state FROM windows WHERE seq = {killedSeq}"));
            var survivors = instances.Where(instance => instance != doomed).ToArray();

            // Every request is answered by an instance other than the one that accepted it, when it can be.
            foreach (var (id, accepted) in submitted.Prepend((blocker, 0)))
            {
                var asked = survivors.FirstOrDefault(s => s != instances[accepted]) ?? survivors[0];
                await Eventually.ReturnsAsync(
                    () => StatusAsync(asked, id),
                    status => status.GetProperty("status").GetString() == "completed",
                    Lease + PollInterval + (expected.Length * Window) + (10 * Slack),
                    $"request {id} to complete after the kill");
            }

            var windows = (await survivors[0].Client.GetFromJsonAsync<JsonElement>("/windows?limit=100", TestContext.Current.CancellationToken))
                .GetProperty("windows").EnumerateArray().Reverse()
                .Select(w => (
                    Seq: w.GetProperty("seq").GetInt64(),
                    Start: w.GetProperty("started_at").GetDateTime(),
                    Finish: w.GetProperty("finished_at").ValueKind == JsonValueKind.Null ? (DateTime?)null : w.GetProperty("finished_at").GetDateTime(),
                    State: w.GetProperty("state").GetString(),
                    Ids: w.GetProperty("items").EnumerateArray().SelectMany(i => i.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())).ToArray()))
                .ToList();
            var log = string.Join("\n", windows.Select(w => $"{w.Seq} {w.Start:O} {w.State} [{string.Join(",", w.Ids)}]"));

            // Everything submitted while the blocker ran was waiting when the second window was claimed.
            var secondStart = windows[1].Start;
            foreach (var (id, _) in submitted)
            {
                Assert.True((await StatusAsync(survivors[0], id)).GetProperty("created_at").GetDateTime() < secondStart, $"request {id} was created after the second window started; the test's premise failed:\n{log}");
            }

            // One global order: the windows took exactly the expected chunks, the killed one's ids again at their place.
            var abandoned = Assert.Single(windows, w => w.State == "abandoned");
            Assert.Equal(killedSeq, abandoned.Seq);
            Assert.Equal([[1000], .. expected], windows.Where(w => w.State == "completed").Select(w => w.Ids));
            var retry = windows[windows.IndexOf(abandoned) + 1];
            Assert.Equal(abandoned.Ids, retry.Ids);

            // One rate limit: starts at least a window apart, the abandoned one's start included, and never two windows in flight.
            Assert.All(windows.Zip(windows.Skip(1)), pair =>
            {
                Assert.True(pair.Second.Start - pair.First.Start >= Window, $"windows {pair.First.Seq} and {pair.Second.Seq} started closer than {Window}:\n{log}");
                Assert.True(pair.First.Finish is null || pair.Second.Start >= pair.First.Finish, $"window {pair.Second.Seq} started before window {pair.First.Seq} finished:\n{log}");
            });

            // Failover within the documented bound: the lease runs out, then the next poll takes the window back.
            Assert.True(
                retry.Start - killedAt <= Lease + PollInterval + Slack,
                $"the killed window was taken back {retry.Start - killedAt} after the kill; the bound is {Lease} + {PollInterval}:\n{log}");
            Assert.Equal(23L, await database.ScalarAsync<long>("SELECT count(*) FROM results"));
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }
        }
    }

    private static async Task<Guid> SubmitAsync(ServiceProcess instance, string priority, params int[] ids)
    {
        using var response = await instance.Client.PostAsJsonAsync("/ingest", new { ids, priority }, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>(TestContext.Current.CancellationToken)).GetProperty("ingestion_id").GetGuid();
    }

    private static Task<JsonElement> StatusAsync(ServiceProcess instance, Guid ingestionId) =>
        instance.Client.GetFromJsonAsync<JsonElement>($"/status/{ingestionId}", TestContext.Current.CancellationToken);
}
