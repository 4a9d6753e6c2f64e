using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Scheduling;

/// <summary>An operator's cancel and priority change, and a request's not_after, on a fake clock, against the real dispatcher and SQLite store.</summary>
public sealed class QueueControlSchedulingTests : IDisposable
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);
    private readonly TempDatabase _database = new();

    public void Dispose() => _database.Dispose();

    [Fact]
    public async Task ACancelMidQueueLetsTheNextWindowPackTheIdsAfterTheCancelledOnes()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);

        await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4);
        var cancelled = await harness.SubmitAsync(Priority.Medium, 5, 6, 7);
        await harness.SubmitAsync(Priority.Medium, 8, 9);
        await harness.AdvanceToAsync(1.5 * Second);                  // window 1 done
        Assert.Equal(CancelOutcome.Cancelled, await harness.Control.CancelAsync(cancelled, CancellationToken.None));
        await harness.AdvanceToAsync(20 * Second);
        var windows = await harness.WindowsAsync();
        var status = await harness.StatusAsync(cancelled);

        Assert.Equal([[1, 2, 3], [4, 8, 9]], windows.Select(Ids));
        Assert.Equal([0 * Second, 5 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
        Assert.DoesNotContain(harness.Upstream.Calls, call => call.Id is 5 or 6 or 7);
        Assert.Equal((ProgressStatus.Cancelled, 3, CancelReason.Requested), (status.Status, status.CancelledIds, status.CancelReason));
        Assert.Equal(SchedulingHarness.T0.UtcDateTime + (1.5 * Second), status.CancelledAt);
    }

    [Fact]
    public async Task IdsWhoseNotAfterPassedExpireAtTheNextAdmissionBeforeAndAtTheirTurn()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        var t0 = SchedulingHarness.T0;

        await harness.SubmitAsync(Priority.Medium, 1, 2, 3);
        var partly = await harness.SubmitAsync(Priority.Low, t0 + (7 * Second), 4, 5, 6, 7); // [4, 5, 6] start at 5 s; 7's turn at 10 s is too late
        var never = await harness.SubmitAsync(Priority.Low, t0 + (3 * Second), 8, 9);          // expires while it waits behind them
        await harness.SubmitAsync(Priority.Low, 10);
        await harness.AdvanceToAsync(30 * Second);
        var windows = await harness.WindowsAsync();
        var partlyStatus = await harness.StatusAsync(partly);
        var neverStatus = await harness.StatusAsync(never);

        Assert.Equal([[1, 2, 3], [4, 5, 6], [10]], windows.Select(Ids));
        Assert.Equal([0 * Second, 5 * Second, 10 * Second], windows.Select(w => w.StartedAt - t0));
        Assert.DoesNotContain(harness.Upstream.Calls, call => call.Id is 7 or 8 or 9);

        // Each expired at an admission after its not_after: `never` at 5 s, before its turn; `partly`'s last id at 10 s, at its turn.
        Assert.Equal((ProgressStatus.Cancelled, 2, 0, CancelReason.Expired, t0.UtcDateTime + (5 * Second)), (neverStatus.Status, neverStatus.CancelledIds, neverStatus.StartedIds, neverStatus.CancelReason, neverStatus.CancelledAt));
        Assert.Equal((ProgressStatus.Cancelled, 1, 3, CancelReason.Expired, t0.UtcDateTime + (10 * Second)), (partlyStatus.Status, partlyStatus.CancelledIds, partlyStatus.StartedIds, partlyStatus.CancelReason, partlyStatus.CancelledAt));
        Assert.Equal([ProgressStatus.Completed, ProgressStatus.Cancelled], partlyStatus.Batches.Select(b => b.Status));
        Assert.Equal(t0.UtcDateTime + (7 * Second), partlyStatus.NotAfter);
    }

    [Fact]
    public async Task ALowRequestMovedToHighOvertakesWaitingMediumWorkAtTheNextWindow()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);

        await harness.SubmitAsync(Priority.Medium, 1, 2, 3, 4, 5, 6);
        var low = await harness.SubmitAsync(Priority.Low, 7, 8);
        await harness.AdvanceToAsync(2 * Second);
        Assert.Equal(ReprioritiseOutcome.Moved, await harness.Control.ReprioritiseAsync(low, Priority.High, CancellationToken.None));
        await harness.AdvanceToAsync(20 * Second);
        var windows = await harness.WindowsAsync();

        Assert.Equal([[1, 2, 3], [7, 8, 4], [5, 6]], windows.Select(Ids));
        Assert.Equal([0 * Second, 5 * Second, 10 * Second], windows.Select(w => w.StartedAt - SchedulingHarness.T0));
        Assert.Equal((Priority.High, ProgressStatus.Completed), ((await harness.StatusAsync(low)).Priority, (await harness.StatusAsync(low)).Status));
    }

    [Fact]
    public async Task ALimitChangeAppliesFromTheNextAdmissionAndNoSpanBreaksTheStricterLimit()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        var t0 = SchedulingHarness.T0;
        await harness.SubmitAsync(Priority.Medium, [.. Enumerable.Range(1, 30)]);

        await harness.AdvanceToAsync(6 * Second);                            // windows at 0 and 5 s under 3 per 5 s
        await harness.Store.SetLimitAsync(new RateLimit(3, 10 * Second), CancellationToken.None);
        await harness.AdvanceToAsync(26 * Second);                           // 3 per 10 s: 15 and 25 s
        await harness.Store.SetLimitAsync(new RateLimit(6, 5 * Second), CancellationToken.None);
        await harness.AdvanceToAsync(46 * Second);                           // 6 per 5 s, from 35 s: ten seconds after 25
        var windows = await harness.WindowsAsync();

        Assert.Equal([0 * Second, 5 * Second, 15 * Second, 25 * Second, 35 * Second, 40 * Second, 45 * Second], windows.Select(w => w.StartedAt - t0));
        Assert.Equal([3, 3, 3, 3, 6, 6, 6], windows.Select(w => Ids(w).Length));

        // Every span, however long, holds no more than the stricter of the limits in force at its ends allows.
        var limits = new[] { (3, 5 * Second), (3, 5 * Second), (3, 10 * Second), (3, 10 * Second), (6, 5 * Second), (6, 5 * Second), (6, 5 * Second) };
        for (var i = 0; i < windows.Count; i++)
        {
            for (var j = i + 1; j < windows.Count; j++)
            {
                var span = windows[j].StartedAt - windows[i].StartedAt;
                if (j == i + 1)
                {
                    Assert.True(span >= limits[i].Item2 && span >= limits[j].Item2, $"windows {i} and {j} are {span} apart, closer than one of their windows");
                }

                var stricter = limits[i].Item1 * limits[j].Item2 <= limits[j].Item1 * limits[i].Item2 ? limits[i] : limits[j];
                if (span < stricter.Item2)
                {
                    Assert.True(windows.Skip(i).Take(j - i + 1).Sum(w => Ids(w).Length) <= stricter.Item1, $"windows {i} to {j} within {span} hold more than {stricter}");
                }
            }
        }
    }

    private static int[] Ids(WindowRecord window) => [.. window.Items.SelectMany(item => item.Ids)];
}
