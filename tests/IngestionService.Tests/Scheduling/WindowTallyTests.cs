using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;

namespace IngestionService.Tests.Scheduling;

/// <summary>What a finished window changes, time rounding, and the queue's totals: the same rules for every backend.</summary>
public sealed class WindowTallyTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void FinalIdsAreCountedPerIngestionAndRetriesGoBackDueAfterTheirDelay()
    {
        var window = new ClaimedWindow(1, T0, [Item(seq: 1, position: 0), Item(seq: 1, position: 1), Item(seq: 2, position: 0), Item(seq: 2, position: 1)]);
        var finished = T0.AddSeconds(1);
        var outcome = new WindowOutcome([Fetch(FetchState.Succeeded), Fetch(FetchState.Failed), Fetch(FetchState.Retrying, TimeSpan.FromTicks(15_000)), Fetch(FetchState.Retrying)]);

        var tally = WindowTally.Of(window, outcome, finished);

        Assert.Equal([(1L, 2, 1)], tally.Progress);
        Assert.Equal([2, 3], tally.Retries);
        Assert.Null(tally.PausedUntil);
        Assert.Equal(finished.AddMilliseconds(2), WindowTally.NextAttemptAt(outcome.Fetches[2], finished));
        Assert.Equal(finished.AddMilliseconds(2), WindowTally.DueAt(outcome.Fetches[2], finished));
        Assert.Null(WindowTally.NextAttemptAt(outcome.Fetches[3], finished));
        Assert.Equal(finished, WindowTally.DueAt(outcome.Fetches[3], finished));
        Assert.Null(WindowTally.NextAttemptAt(outcome.Fetches[0], finished));
    }

    [Fact]
    public void EachCallIsMarkedPerRunOfTheLogInPositionOrderAndOnlyANew429IsThrottled()
    {
        // Taken in the global order (ingestion 2 first), stored by ingestion and position: runs 1:[3, 4] and 2:[0].
        var window = new ClaimedWindow(1, T0, [Item(seq: 2, position: 0), Item(seq: 1, position: 4), Item(seq: 1, position: 3)]);
        var throttledNow = new FetchOutcome(FetchState.Retrying, 429, null, false, "HTTP 429", 1, 1, null);
        var outcome = new WindowOutcome([Fetch(FetchState.Failed), throttledNow, Fetch(FetchState.Succeeded)]);
        var throttledBefore = new WindowItem(1, Guid.Empty, Priority.Medium, 0, 1, PriorAttempts: 1, PriorThrottled: 1);

        var tally = WindowTally.Of(window, outcome, T0.AddSeconds(1));

        Assert.Equal(
            [(1L, 3, new[] { (byte)CallMark.Succeeded, (byte)CallMark.Throttled }), (2L, 0, [(byte)CallMark.Failed])],
            tally.Marks.Select(run => (run.IngestionSeq, run.FirstPosition, run.Marks)));
        Assert.Equal(CallMark.Retrying, WindowTally.MarkOf(throttledBefore, new FetchOutcome(FetchState.Retrying, 500, null, false, "HTTP 500", 2, 1, null)));
        Assert.Equal(CallMark.Throttled, WindowTally.MarkOf(throttledBefore, new FetchOutcome(FetchState.Retrying, 429, null, false, "HTTP 429", 2, 2, null)));
    }

    [Fact]
    public void APauseEndsItsLengthAfterTheFinishRoundedUpAndAMismatchedOutcomeIsRefused()
    {
        var window = new ClaimedWindow(1, T0, [Item(seq: 1, position: 0)]);
        var finished = T0.AddSeconds(1);

        var tally = WindowTally.Of(window, new WindowOutcome([Fetch(FetchState.Retrying)], Pause: TimeSpan.FromSeconds(30) + TimeSpan.FromTicks(1)), finished);

        Assert.Equal(finished.AddSeconds(30).AddMilliseconds(1), tally.PausedUntil);
        Assert.Throws<ArgumentOutOfRangeException>(() => WindowTally.Of(window, new WindowOutcome([]), finished));
    }

    [Fact]
    public void StoredTimesRoundUpExceptTheCreatedTimeWhichRoundsDown()
    {
        var exact = T0.AddMilliseconds(5);
        var between = exact.AddTicks(1);

        Assert.Equal(exact, Milliseconds.Ceiling(exact));
        Assert.Equal(exact.AddMilliseconds(1), Milliseconds.Ceiling(between));
        Assert.Equal(exact, Milliseconds.Floor(between));
        Assert.Equal(TimeSpan.FromMilliseconds(2), Milliseconds.Ceiling(TimeSpan.FromTicks(10_001)));
        Assert.Equal(TimeSpan.FromMilliseconds(1), Milliseconds.Ceiling(TimeSpan.FromMilliseconds(1)));
        Assert.Equal(TimeSpan.Zero, Milliseconds.Ceiling(TimeSpan.Zero));
    }

    [Fact]
    public void IdsAheadCountEverythingMoreUrgentTheUnstartedBeforeInTheSamePriorityAndHandedBackIds()
    {
        var totals = new QueueTotals();
        totals.Set(Priority.High, enqueued: 10, started: 4, requeued: 1);
        totals.Set(Priority.Medium, enqueued: 20, started: 5, requeued: 2);
        totals.Set(Priority.Low, enqueued: 7, started: 0, requeued: 0);

        Assert.Equal(new QueueDepth(7, 17, 7), totals.Depth);

        // A MEDIUM ingestion with 12 MEDIUM ids enqueued before it (5 of them started) and one handed-back
        // MEDIUM id at or before it: 7 HIGH, then 7 unstarted MEDIUM, then that one.
        Assert.Equal(7 + 7 + 1, totals.IdsAhead(Priority.Medium, idsBefore: 12, requeuedAtOrBefore: 1));

        // Everything before it in its priority has started: only the more urgent work is ahead.
        Assert.Equal(7, totals.IdsAhead(Priority.Medium, idsBefore: 3, requeuedAtOrBefore: 0));
        Assert.Equal(0, totals.IdsAhead(Priority.High, idsBefore: 4, requeuedAtOrBefore: 0));
        Assert.Equal(12, QueuePosition.IdsAhead(unstartedAhead: 9, requeuedAtOrBefore: 3));
    }

    [Fact]
    public void AStoredKeyAnswersAReplayForTheSameRequestAndAConflictForAnother()
    {
        var ingestion = Guid.NewGuid();

        Assert.Equal(new EnqueueResult(ingestion, EnqueueOutcome.Replayed), EnqueueResult.Earlier(ingestion, [1, 2, 3], [1, 2, 3]));
        Assert.Equal(new EnqueueResult(ingestion, EnqueueOutcome.KeyConflict), EnqueueResult.Earlier(ingestion, [1, 2, 3], [1, 2, 4]));
    }

    private static WindowItem Item(long seq, int position) => new(seq, Guid.Empty, Priority.Medium, position, 100 + position);

    private static FetchOutcome Fetch(FetchState state, TimeSpan? retryAfter = null) => new(state, null, null, false, null, 1, 0, retryAfter);
}
