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
/// partition heals, without a restart.
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
        var settings = new Dictionary<string, string>
        {
            ["Storage:Provider"] = "Postgres",
            ["Ingestion:Window"] = "00:00:01",
            ["Ingestion:Lease"] = "00:00:02",
            ["Ingestion:PollInterval"] = "00:00:00.100",
            ["Upstream:Mode"] = "Http",
            ["Upstream:BaseUrl"] = upstream.BaseAddress.ToString(),
            ["Upstream:Timeout"] = "00:00:02",
        };
        var throughProxy = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Host = "127.0.0.1", Port = proxy.Port }.ConnectionString;
        await using var cutOff = await ServiceProcess.StartAsync(throughProxy, settings);
        await using var other = await ServiceProcess.StartAsync(database.ConnectionString, settings);

        // Submitted to the instance that will be cut off, whose dispatcher is woken at once: it takes the first window.
        var submitted = new List<Guid> { await SubmitAsync(cutOff, 1, 2, 3, 4, 5, 6) };
        var owner = $"%:{cutOff.ProcessId}:%";
        await Eventually.ReturnsAsync(() => database.ScalarAsync<long>($"SELECT count(*) FROM windows WHERE state = 0 AND owner LIKE '{owner}'"),
            running => running > 0, TimeSpan.FromSeconds(20), "the instance to be cut off to run a window");
        proxy.Cut();
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
