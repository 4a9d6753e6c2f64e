using System.Net.Http.Json;
using System.Text.Json;
using IngestionService.Tests.Infrastructure;
using Npgsql;

namespace IngestionService.Tests.Durability;

/// <summary>
/// Two real service processes on one PostgreSQL database, one of them behind a proxy that black-holes its
/// database traffic for twice the lease while it runs a window, against a real HTTP upstream that logs
/// every call. The limit holds throughout (never more than BatchSize calls in any Window span, nor in
/// flight at once), no acknowledged ingestion is lost, and the cut-off instance carries on after the
/// partition heals, without a restart. The same through a restart of the database server itself.
/// </summary>
[Collection(nameof(RunsAlone))]
public sealed class PartitionTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(2);

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AnInstanceCutOffFromTheDatabaseForTwoLeasesNeverBreaksTheLimitLosesNothingAndCarriesOn()
    {
        await using var database = await TempPostgresDatabase.CreateAsync();
        // Calls nearly as long as the upstream timeout, so the cut-off instance's deadline cuts them off.
        await using var upstream = await FakeUpstreamServer.StartAsync((_, _) => FakeAnswer.Ok with { Delay = TimeSpan.FromMilliseconds(1500) });
        var direct = new NpgsqlConnectionStringBuilder(database.ConnectionString);
        await using var proxy = BlackHoleProxy.Start(direct.Host!, direct.Port);
        var settings = Settings(upstream);
        var throughProxy = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port }.ConnectionString;
        await using var cutOff = await ServiceProcess.StartAsync(throughProxy, settings);

        // Alone, it takes the first window (another instance would hear of the work and might take it first).
        var submitted = new List<Guid> { await SubmitAsync(cutOff, 1, 2, 3, 4, 5, 6) };
        var owner = $"%:{cutOff.ProcessId}:%";
        await Eventually.ReturnsAsync(() => database.ScalarAsync<long>($"SELECT count(*) FROM windows WHERE state = 0 AND owner LIKE '{owner}'"),
            running => running > 0, TimeSpan.FromSeconds(20), "the instance to be cut off to run a window");
        proxy.Cut();
        await using var other = await ServiceProcess.StartAsync(database.ConnectionString, settings);
        submitted.Add(await SubmitAsync(other, 7, 8, 9, 10, 11, 12));
        await Task.Delay(2 * Lease, Token); // the partition lasts two leases
        proxy.Heal();
        var healedAt = DateTime.UtcNow;

        foreach (var ingestion in submitted)
        {
            var done = await CompletedAsync(other, ingestion, TimeSpan.FromSeconds(60));
            Assert.Equal(6, done.GetProperty("completed_ids").GetInt32());
        }

        // The cut-off instance carries on, with no restart: alone now, it runs new work itself.
        Assert.Equal(0, await other.TerminateAsync(TimeSpan.FromSeconds(20)));
        var after = await SubmitAsync(cutOff, 13, 14, 15);
        await CompletedAsync(cutOff, after, TimeSpan.FromSeconds(30));
        Assert.True(
            await database.ScalarAsync<long>($"SELECT count(*) FROM windows WHERE state = 1 AND owner LIKE '{owner}' AND started_at > '{healedAt:O}'::timestamptz") > 0,
            $"the instance cut off ran no window after the partition healed:\n{cutOff.Output}");
        Assert.True(upstream.MostCallsWithin(Window) <= 3, $"{upstream.MostCallsWithin(Window)} calls within one window's span");
        Assert.True(upstream.MostInFlight <= 3, $"{upstream.MostInFlight} calls in flight at once");
    }

    [Fact]
    public async Task ARestartOfTheDatabaseMidRunNeverBreaksTheLimitLosesNothingAndBothInstancesCarryOn()
    {
        await using var cluster = await ThrowawayPostgresCluster.StartAsync();
        await using var upstream = await FakeUpstreamServer.StartAsync((_, _) => FakeAnswer.Ok with { Delay = TimeSpan.FromMilliseconds(300) });
        var settings = Settings(upstream);
        await using var first = await ServiceProcess.StartAsync(cluster.ConnectionString, settings);
        await using var second = await ServiceProcess.StartAsync(cluster.ConnectionString, settings);
        var submitted = new List<(ServiceProcess Via, Guid Id)>
        {
            (first, await SubmitAsync(first, 1, 2, 3, 4, 5, 6)),
            (second, await SubmitAsync(second, 7, 8, 9, 10, 11, 12)),
        };
        await Eventually.HoldsAsync(() => upstream.Calls.Count >= 3, TimeSpan.FromSeconds(20), "the first window's calls");

        await cluster.RestartAsync(); // every session of both instances is cut mid-run

        // Each instance takes submissions again (a request that meets a cut session answers 503, as a client retries).
        submitted.Add((first, await SubmitEventuallyAsync(first, 13, 14, 15)));
        submitted.Add((second, await SubmitEventuallyAsync(second, 16, 17, 18)));
        foreach (var (via, ingestion) in submitted)
        {
            var done = await CompletedAsync(via, ingestion, TimeSpan.FromSeconds(60));
            Assert.Equal(done.GetProperty("total_ids").GetInt32(), done.GetProperty("completed_ids").GetInt32());
        }

        Assert.True(upstream.MostCallsWithin(Window) <= 3, $"{upstream.MostCallsWithin(Window)} calls within one window's span");
        Assert.True(upstream.MostInFlight <= 3, $"{upstream.MostInFlight} calls in flight at once");
        Assert.All(Enumerable.Range(1, 18), id => Assert.True(upstream.CallsFor(id) >= 1, $"id {id} was never fetched"));
    }

    /// <summary>A 1 s window, a 2 s lease and calls of at most the 2 s timeout, against the fake upstream.</summary>
    private static Dictionary<string, string> Settings(FakeUpstreamServer upstream) => new()
    {
        ["Storage:Provider"] = "Postgres",
        ["Ingestion:Window"] = "00:00:01",
        ["Ingestion:Lease"] = "00:00:02",
        ["Ingestion:PollInterval"] = "00:00:00.100",
        ["Upstream:Mode"] = "Http",
        ["Upstream:BaseUrl"] = upstream.BaseAddress.ToString(),
        ["Upstream:Timeout"] = "00:00:02",
    };

    /// <summary>Submits as a client that retries a 503 after its Retry-After (at most a few times) does.</summary>
    private static async Task<Guid> SubmitEventuallyAsync(ServiceProcess instance, params int[] ids)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var response = await instance.Client.PostAsJsonAsync("/ingest", new { ids, priority = "MEDIUM" }, Token);
            if (response.StatusCode != System.Net.HttpStatusCode.ServiceUnavailable || attempt == 10)
            {
                Assert.True(response.IsSuccessStatusCode, $"POST /ingest answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(Token)}");
                return (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid();
            }

            Assert.NotNull(response.Headers.RetryAfter?.Delta);
            await Task.Delay(TimeSpan.FromMilliseconds(200), Token);
        }
    }

    private static async Task<Guid> SubmitAsync(ServiceProcess instance, params int[] ids)
    {
        using var response = await instance.Client.PostAsJsonAsync("/ingest", new { ids, priority = "MEDIUM" }, Token);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>(Token)).GetProperty("ingestion_id").GetGuid();
    }

    private static Task<JsonElement> CompletedAsync(ServiceProcess instance, Guid ingestion, TimeSpan deadline) =>
        Eventually.ReturnsAsync(
            async () => await instance.Client.GetFromJsonAsync<JsonElement>($"/status/{ingestion}", Token),
            status => status.GetProperty("status").GetString() == "completed", deadline, $"ingestion {ingestion} to complete");
}
