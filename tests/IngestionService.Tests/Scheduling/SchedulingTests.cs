using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Scheduling;

/// <summary>The normative scheduling rules, on a fake clock, against the real dispatcher and SQLite store.</summary>
public sealed class SchedulingTests : IDisposable
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);
    private readonly TempDatabase _database = new();

    public void Dispose() => _database.Dispose();

    [Fact]
    public async Task TheBriefsExampleRunsWindowByWindow()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);

        await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5);
        await harness.AdvanceToAsync(4 * Second);
        await harness.SubmitAsync(Priority.High, 6, 7, 8, 9);
        await harness.AdvanceToAsync(20 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[1, 2, 3], [6, 7, 8], [9, 4, 5]], windows.Select(Ids));
        Assert.Equal([0 * Second, 5 * Second, 10 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
        Assert.Equal([1 * Second, 6 * Second, 11 * Second], windows.Select(w => w.FinishedAt!.Value - SchedulingHarness.T0));
        Assert.All(windows, w => Assert.Equal(WindowState.Completed, w.State));
    }

    [Fact]
    public async Task APauseHoldsEveryWindowTheWindowInFlightFinishesAndTheResumeStartsTheNextAtOnce()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);

        await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5);
        await harness.AdvanceToAsync(0.5 * Second);                 // window 1 in flight
        await harness.Control.PauseAsync("maintenance", CancellationToken.None);
        await harness.SubmitAsync(Priority.High, 6, 7);             // accepted while paused
        await harness.AdvanceToAsync(60 * Second);                  // a minute: nothing more starts
        var whilePaused = await harness.WindowsAsync();
        var status = await harness.StatusAsync((await harness.Store.GetRecentIngestionsAsync(1, CancellationToken.None))[0].Id);

        await harness.Control.ResumeAsync(CancellationToken.None);
        await harness.QuiescentAsync();
        await harness.AdvanceToAsync(80 * Second);
        var windows = await harness.WindowsAsync();

        Assert.Equal([[1, 2, 3]], whilePaused.Select(Ids));
        Assert.Equal(WindowState.Completed, whilePaused[0].State);
        Assert.True(status.QueuePaused);
        Assert.Equal([[1, 2, 3], [6, 7, 4], [5]], windows.Select(Ids));
        Assert.Equal([0 * Second, 60 * Second, 65 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
    }

    [Fact]
    public async Task HigherPriorityOvertakesWorkThatIsAlreadyWaiting()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);

        await harness.SubmitAsync(Priority.Low, 1, 2, 3, 4, 5, 6);
        await harness.AdvanceToAsync(1 * Second);
        await harness.SubmitAsync(Priority.Medium, 7, 8, 9);
        await harness.AdvanceToAsync(2 * Second);
        await harness.SubmitAsync(Priority.High, 10);
        await harness.AdvanceToAsync(25 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[1, 2, 3], [10, 7, 8], [9, 4, 5], [6]], windows.Select(Ids));
    }

    [Fact]
    public async Task WithinOnePriorityOlderRequestsGoFirst()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);

        // The first request keeps the limiter busy, so the next three wait together.
        await harness.SubmitAsync(Priority.Low, 100);
        await harness.SubmitAsync(Priority.Medium, 1, 2);
        await harness.AdvanceToAsync(1 * Second);
        await harness.SubmitAsync(Priority.Medium, 3, 4);
        await harness.SubmitAsync(Priority.Medium, 5, 6);
        await harness.AdvanceToAsync(20 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[100], [1, 2, 3], [4, 5, 6]], windows.Select(Ids));
    }

    [Fact]
    public async Task RequestsCreatedInTheSameMillisecondKeepTheirArrivalOrder()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        await harness.SubmitAsync(Priority.Low, 100);

        // The fake clock does not move between these, so only the arrival sequence can order them.
        foreach (var id in new[] { 5, 4, 3, 2, 1, 6 })
        {
            await harness.SubmitAsync(Priority.High, id);
        }

        await harness.AdvanceToAsync(15 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[100], [5, 4, 3], [2, 1, 6]], windows.Select(Ids));
    }

    [Fact]
    public async Task AWindowTakesIdsFromSeveralRequests()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        var busy = await harness.SubmitAsync(Priority.High, 100);
        var first = await harness.SubmitAsync(Priority.Low, 1);
        var second = await harness.SubmitAsync(Priority.Low, 2);
        var third = await harness.SubmitAsync(Priority.Low, 3, 4);
        await harness.AdvanceToAsync(12 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([[100], [1, 2, 3], [4]], windows.Select(Ids));
        Assert.Equal([first, second, third], windows[1].Items.Select(item => item.IngestionId));
        Assert.Equal(ProgressStatus.Completed, (await harness.StatusAsync(busy)).Status);
        Assert.Equal(ProgressStatus.Completed, (await harness.StatusAsync(third)).Status);
    }

    [Fact]
    public async Task AnIdleServiceStartsAWindowTheMomentWorkArrives()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        await harness.AdvanceToAsync(TimeSpan.FromMilliseconds(12_300));

        await harness.SubmitAsync(Priority.Low, 1);
        await harness.AdvanceToAsync(TimeSpan.FromMilliseconds(17_000));
        await harness.SubmitAsync(Priority.Low, 2);
        await harness.AdvanceToAsync(30 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([TimeSpan.FromMilliseconds(12_300), TimeSpan.FromMilliseconds(17_300)], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
    }

    [Fact]
    public async Task WindowsStartAtLeastAWindowApartWhileWorkWaits()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database, window: TimeSpan.FromMilliseconds(700), fetchDelay: TimeSpan.FromMilliseconds(300));
        await harness.SubmitAsync(Priority.Medium, [.. Enumerable.Range(1, 30)]);
        await harness.AdvanceToAsync(10 * Second);

        var starts = (await harness.WindowsAsync()).Select(w => w.StartedAt).ToList();
        Assert.Equal(10, starts.Count);
        Assert.All(starts.Zip(starts.Skip(1)), pair => Assert.Equal(TimeSpan.FromMilliseconds(700), pair.Second - pair.First));
    }

    [Fact]
    public async Task FetchesSlowerThanTheWindowDelayTheNextWindowAndNeverOverlap()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database, fetchDelay: 7 * Second);
        await harness.SubmitAsync(Priority.Medium, [.. Enumerable.Range(1, 9)]);
        await harness.AdvanceToAsync(30 * Second);

        var windows = await harness.WindowsAsync();
        Assert.Equal([0 * Second, 7 * Second, 14 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
        Assert.All(windows.Zip(windows.Skip(1)), pair => Assert.True(pair.Second.StartedAt >= pair.First.FinishedAt));
        Assert.Equal(3, harness.Upstream.MaxInFlight);
        Assert.Equal(9, harness.Upstream.Calls.Count);
    }

    [Fact]
    public async Task NeverMoreThanBatchSizeIdsAreInFlight()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database, window: TimeSpan.FromMilliseconds(100), fetchDelay: TimeSpan.FromMilliseconds(400));
        for (var i = 0; i < 5; i++)
        {
            await harness.SubmitAsync((Priority)(i % 3), [.. Enumerable.Range((i * 10) + 1, 7)]);
        }

        await harness.AdvanceToAsync(10 * Second);

        Assert.Equal(35, harness.Upstream.Calls.Count);
        Assert.Equal(3, harness.Upstream.MaxInFlight);
        Assert.All(await harness.WindowsAsync(), w => Assert.InRange(w.Items.Sum(item => item.Ids.Length), 1, 3));
    }

    [Fact]
    public async Task StatusesNeverGoBackwards()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        var medium = await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5);
        var high = Guid.Empty;
        var seen = new List<IngestionStatus>();
        for (var t = TimeSpan.Zero; t <= 16 * Second; t += TimeSpan.FromMilliseconds(500))
        {
            await harness.AdvanceToAsync(t);
            if (t == 4 * Second)
            {
                high = await harness.SubmitAsync(Priority.High, 6, 7, 8, 9);
            }

            seen.Add(await harness.StatusAsync(medium));
            if (high != Guid.Empty)
            {
                seen.Add(await harness.StatusAsync(high));
            }
        }

        foreach (var history in seen.GroupBy(s => s.IngestionId))
        {
            var snapshots = history.ToList();
            for (var i = 1; i < snapshots.Count; i++)
            {
                Assert.True(snapshots[i].Status >= snapshots[i - 1].Status, $"overall status went from {snapshots[i - 1].Status} to {snapshots[i].Status}");
                for (var b = 0; b < snapshots[i].Batches.Count; b++)
                {
                    Assert.True(snapshots[i].Batches[b].Status >= snapshots[i - 1].Batches[b].Status, $"batch {b} went from {snapshots[i - 1].Batches[b].Status} to {snapshots[i].Batches[b].Status}");
                }
            }

            Assert.Equal(ProgressStatus.Completed, snapshots[^1].Status);
        }

        // The MEDIUM request passes through every state: waiting is visible, not skipped.
        var mediumStates = seen.Where(s => s.IngestionId == medium).Select(s => s.Batches[1].Status).Distinct();
        Assert.Equal([ProgressStatus.YetToStart, ProgressStatus.Triggered, ProgressStatus.Completed], mediumStates);
    }

    [Fact]
    public async Task StatusReportsTheTimesOfEachBatch()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        var medium = await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5);
        await harness.AdvanceToAsync(4 * Second);
        await harness.SubmitAsync(Priority.High, 6, 7, 8, 9);
        await harness.AdvanceToAsync(TimeSpan.FromMilliseconds(10_500));

        var status = await harness.StatusAsync(medium);
        Assert.Equal(ProgressStatus.Triggered, status.Status);
        Assert.Equal((SchedulingHarness.T0).UtcDateTime, status.Batches[0].TriggeredAt);
        Assert.Equal((SchedulingHarness.T0 + Second).UtcDateTime, status.Batches[0].CompletedAt);
        Assert.Equal((SchedulingHarness.T0 + (10 * Second)).UtcDateTime, status.Batches[1].TriggeredAt);
        Assert.Null(status.Batches[1].CompletedAt);
        Assert.Equal(ProgressStatus.Triggered, status.Batches[1].Status);
    }

    [Fact]
    public async Task WaitEstimatesMatchTheActualStartsWhileNoHigherPriorityWorkArrives()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        await harness.SubmitAsync(Priority.High, 1, 2, 3, 4, 5);
        var medium = await harness.SubmitAsync(Priority.Medium, 6, 7, 8, 9, 10, 11, 12);
        await harness.AdvanceToAsync(TimeSpan.FromMilliseconds(500));

        var snapshot = await harness.Store.GetIngestionAsync(medium, CancellationToken.None);
        var estimate = new WaitEstimate(harness.Dispatcher.NextWindowNotBefore, 5 * Second, 3);
        var estimated = StatusReport.Build(snapshot!, estimate);
        Assert.Equal(2, estimated.IdsAhead);

        await harness.AdvanceToAsync(20 * Second);
        var actual = await harness.StatusAsync(medium);
        Assert.Equal(estimated.Batches.Select(b => b.EstimatedStartAt), actual.Batches.Select(b => b.TriggeredAt));
        Assert.Equal([5 * Second, 10 * Second, 15 * Second], actual.Batches.Select(b => b.TriggeredAt!.Value - SchedulingHarness.T0.UtcDateTime));
    }

    private static int[] Ids(WindowRecord window) => [.. window.Items.SelectMany(item => item.Ids)];
}
