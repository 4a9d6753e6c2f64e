using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Durability;

/// <summary>A process that stops mid-window, and the one that starts after it on the same file (fake clock).</summary>
public sealed class RecoveryTests : IDisposable
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);
    private readonly TempDatabase _database = new();

    public void Dispose() => _database.Dispose();

    [Fact]
    public async Task IdsInFlightWhenTheProcessStopsAreFetchedAgainAfterRestart()
    {
        Guid ingestion;
        await using (var before = await SchedulingHarness.StartAsync(_database))
        {
            ingestion = await before.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5);
            await before.AdvanceToAsync(TimeSpan.FromMilliseconds(5_500));
            Assert.Equal(ProgressStatus.Triggered, (await before.StatusAsync(ingestion)).Batches[1].Status);
        }

        await using var after = await SchedulingHarness.StartAsync(_database, now: SchedulingHarness.T0 + TimeSpan.FromMilliseconds(5_500));
        var recovered = await after.StatusAsync(ingestion);
        Assert.Equal(ProgressStatus.Completed, recovered.Batches[0].Status);
        Assert.Equal(ProgressStatus.Triggered, recovered.Batches[1].Status);

        await after.AdvanceToAsync(20 * Second);

        var windows = await after.WindowsAsync();
        Assert.Equal(
            [(0 * Second, WindowState.Completed, new[] { 1, 2, 3 }), (5 * Second, WindowState.Abandoned, [4, 5]), (10 * Second, WindowState.Completed, [4, 5])],
            windows.Select(w => (w.StartedAt - SchedulingHarness.T0, w.State, w.Items.SelectMany(i => i.Ids).ToArray())));
        var status = await after.StatusAsync(ingestion);
        Assert.Equal(ProgressStatus.Completed, status.Status);
        Assert.Equal(5, status.CompletedIds);
        Assert.Equal((SchedulingHarness.T0 + (5 * Second)).UtcDateTime, status.Batches[1].TriggeredAt);
        Assert.Equal((SchedulingHarness.T0 + (11 * Second)).UtcDateTime, status.Batches[1].CompletedAt);
        Assert.Equal(5, _database.Scalar("SELECT count(*) FROM results"));
    }

    [Fact]
    public async Task TheRateLimitHoldsAcrossARestart()
    {
        await using (var before = await SchedulingHarness.StartAsync(_database))
        {
            await before.SubmitAsync(Priority.Low, 1);
            await before.AdvanceToAsync(2 * Second);
        }

        await using var after = await SchedulingHarness.StartAsync(_database, now: SchedulingHarness.T0 + (2 * Second));
        await after.SubmitAsync(Priority.High, 2);
        await after.AdvanceToAsync(10 * Second);

        var windows = await after.WindowsAsync();
        Assert.Equal([0 * Second, 5 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
    }

    [Fact]
    public async Task RequeuedIdsKeepTheirPlaceInTheGlobalOrder()
    {
        await using (var before = await SchedulingHarness.StartAsync(_database))
        {
            await before.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5, 6);
            await before.AdvanceToAsync(TimeSpan.FromMilliseconds(5_500));
        }

        await using var after = await SchedulingHarness.StartAsync(_database, now: SchedulingHarness.T0 + (6 * Second));
        await after.SubmitAsync(Priority.Low, 7);
        await after.SubmitAsync(Priority.High, 8);
        await after.AdvanceToAsync(20 * Second);

        var windows = (await after.WindowsAsync()).Where(w => w.State == WindowState.Completed);
        Assert.Equal([[1, 2, 3], [8, 4, 5], [6, 7]], windows.Select(w => w.Items.SelectMany(i => i.Ids).ToArray()));
    }
}
