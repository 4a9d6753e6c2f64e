using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace IngestionService.Tests.Scheduling;

/// <summary>The retention sweeper on a fake clock, against the real dispatcher and SQLite store: what goes when, and what never does.</summary>
public sealed class RetentionSchedulingTests : IDisposable
{
    private static readonly TimeSpan Week = TimeSpan.FromDays(7);
    private readonly TempDatabase _database = new();

    public void Dispose() => _database.Dispose();

    [Theory]
    [InlineData(0, 20)]        // a batch too quick to measure still lets writers in for 20 ms
    [InlineData(1, 50)]
    [InlineData(3.3, 165)]     // a batch of 500 ids on SQLite: under 2 % of the time holding the write lock
    [InlineData(1000, 5000)]   // a 100 000-id ingestion: the pause is capped, the sweep goes on
    public void APauseBetweenBatchesIsFiftyTimesTheBatchBetween20MsAnd5S(double batchMs, double pauseMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(pauseMs), IngestionService.Scheduling.Retention.PauseAfter(TimeSpan.FromMilliseconds(batchMs)));

    [Fact]
    public async Task AWeekOldWaitingIngestionSurvivesEverySweepAndFinishedWorkGoesOnceItIsOlderThanTheRetention()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database);
        var sweeper = Sweeper(harness, Week);
        var done = await harness.SubmitAsync(Priority.High, 1, 2, 3);
        await harness.AdvanceToAsync(TimeSpan.FromSeconds(1.5));          // window 1 finished at T0 + 1 s
        await harness.Control.PauseAsync("maintenance", CancellationToken.None);
        var waiting = await harness.SubmitAsync(Priority.Low, 4, 5, 6);

        await JumpAsync(harness, Week + TimeSpan.FromSeconds(1));        // finished exactly a week ago: kept
        Assert.Equal(0, (await sweeper.SweepAsync(CancellationToken.None)).Ingestions);
        Assert.NotNull(await harness.Store.GetIngestionAsync(done, CancellationToken.None));

        await JumpAsync(harness, Week + TimeSpan.FromSeconds(2));
        var swept = await sweeper.SweepAsync(CancellationToken.None);
        Assert.Equal((1, 3L), (swept.Ingestions, swept.Results));
        Assert.Null(await harness.Store.GetIngestionAsync(done, CancellationToken.None));

        // A month on, paused all along: the waiting ingestion is older than any retention, and stays.
        foreach (var day in new[] { 8, 15, 30 })
        {
            await JumpAsync(harness, TimeSpan.FromDays(day));
            Assert.Equal(0, (await sweeper.SweepAsync(CancellationToken.None)).Ingestions);
            Assert.Equal(ProgressStatus.YetToStart, (await harness.StatusAsync(waiting)).Status);
        }

        // Resumed, it runs at once (the newest start is a month old), and goes a week after it finished.
        await harness.Control.ResumeAsync(CancellationToken.None);
        await harness.AdvanceToAsync(TimeSpan.FromDays(30) + TimeSpan.FromSeconds(2));
        Assert.Equal(ProgressStatus.Completed, (await harness.StatusAsync(waiting)).Status);
        await JumpAsync(harness, TimeSpan.FromDays(37) + TimeSpan.FromSeconds(3));
        Assert.Equal(1, (await sweeper.SweepAsync(CancellationToken.None)).Ingestions);
        Assert.Null(await harness.Store.GetIngestionAsync(waiting, CancellationToken.None));
        Assert.Equal([[1, 2, 3], [4, 5, 6]], harness.Upstream.Calls.Chunk(3).Select(chunk => chunk.Select(call => call.Id).ToArray()));
    }

    [Fact]
    public async Task AfterASweepTheNextWindowIsStillSpacedFromTheNewestStart()
    {
        await using var harness = await SchedulingHarness.StartAsync(_database, window: TimeSpan.FromMinutes(10));
        var sweeper = Sweeper(harness, TimeSpan.FromMinutes(1));
        await harness.SubmitAsync(Priority.Medium, 1, 2, 3);
        await harness.AdvanceToAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(1, (await sweeper.SweepAsync(CancellationToken.None)).Ingestions);

        await harness.SubmitAsync(Priority.Medium, 4);
        await harness.AdvanceToAsync(TimeSpan.FromMinutes(9.9));
        Assert.Equal(3, harness.Upstream.Calls.Count);
        await harness.AdvanceToAsync(TimeSpan.FromMinutes(10.1));

        // The purged window's row stays (the newest windows always do), and the limiter spaces from it.
        Assert.Equal([TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.FromMinutes(10)], harness.Upstream.Calls.Select(call => call.StartedAt - SchedulingHarness.T0));
    }

    private static RetentionSweeper Sweeper(SchedulingHarness harness, TimeSpan retention) =>
        new(harness.Store, new StoreWrites(harness.Store, harness.Clock, NullLogger<StoreWrites>.Instance), harness.Clock,
            Options.Create(new IngestionOptions { Retention = retention, IdempotencyKeyLifetime = TimeSpan.FromMinutes(1) }), NullLogger<RetentionSweeper>.Instance);

    /// <summary>Moves the fake clock in one step while the dispatcher has nothing to do (paused, or idle).</summary>
    private static async Task JumpAsync(SchedulingHarness harness, TimeSpan elapsed)
    {
        await harness.QuiescentAsync();
        harness.Clock.Advance(elapsed - harness.Elapsed);
        await harness.QuiescentAsync();
    }
}
