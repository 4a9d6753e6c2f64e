using IngestionService.Events;
using IngestionService.Ingest;

namespace IngestionService.Tests.Scheduling;

/// <summary>The batch events of an ingestion's stream, read off its status: starts by index, completions by time, and resume positions.</summary>
public sealed class IngestionHistoryTests
{
    private static readonly DateTime T0 = new(2026, 12, 3, 12, 0, 0, DateTimeKind.Utc);

    private static BatchStatus Batch(int i, ProgressStatus status, int? triggered, int? completed) =>
        new(Guid.CreateVersion7(), [i * 3 + 1, i * 3 + 2, i * 3 + 3], status, triggered is { } t ? T0.AddSeconds(t) : null, completed is { } c ? T0.AddSeconds(c) : null, null);

    private static IngestionStatus Status(ProgressStatus status, params BatchStatus[] batches) =>
        new(Guid.CreateVersion7(), status, Priority.Medium, T0, batches.Length * 3, 0, 0, 0, null, null, false, null, null, null, null, batches);

    // Batch 1 completes before batch 0, whose id waits for a retry; batch 2 has started; batch 3 waits.
    private static readonly IngestionStatus OutOfOrder = Status(ProgressStatus.Triggered,
        Batch(0, ProgressStatus.Completed, 1, 5),
        Batch(1, ProgressStatus.Completed, 2, 3),
        Batch(2, ProgressStatus.Triggered, 4, null),
        Batch(3, ProgressStatus.YetToStart, null, null));

    [Fact]
    public void StartsAreByIndexAndCompletionsByTheTimeTheirLastResultWasStored()
    {
        Assert.Equal([0, 1, 2], IngestionHistory.Starts(OutOfOrder).Select(e => e.Batch));
        Assert.Equal([1, 0], IngestionHistory.Completions(OutOfOrder).Select(e => e.Batch));
        Assert.Equal("3.0-1", IngestionHistory.PositionOf(OutOfOrder).ToString());
    }

    [Fact]
    public void AResumeGetsWhatItMissedOfEachInTimeOrder()
    {
        Assert.True(StreamPosition.TryParse("1.", out var seen));

        var missed = IngestionHistory.Since(OutOfOrder, seen);

        Assert.Equal(
            [(IngestionHistory.Started, 1), (IngestionHistory.Completed, 1), (IngestionHistory.Started, 2), (IngestionHistory.Completed, 0)],
            missed.Select(e => (e.Type, e.Batch)));
        var after = missed.Aggregate(seen, (position, told) => position.With(told));
        Assert.Equal("3.0-1", after.ToString());
        Assert.Empty(IngestionHistory.Since(OutOfOrder, after));
    }

    [Fact]
    public void AWindowStartedInTheMillisecondTheOneBeforeFinishedIsToldAfterIt()
    {
        // Batch 0's window finished at t=2 and the next window, batch 1's, started within that millisecond.
        Assert.True(StreamPosition.TryParse("1.", out var seen));
        var status = Status(ProgressStatus.Triggered,
            Batch(0, ProgressStatus.Completed, 0, 2),
            Batch(1, ProgressStatus.Completed, 2, 2),
            Batch(2, ProgressStatus.YetToStart, null, null));

        var missed = IngestionHistory.Since(status, seen);

        Assert.Equal(
            [(IngestionHistory.Completed, 0), (IngestionHistory.Started, 1), (IngestionHistory.Completed, 1)],
            missed.Select(e => (e.Type, e.Batch)));
    }

    [Fact]
    public void ABatchThatCompletesLaterWithAnEarlierTimeIsToldAndNoneTwice()
    {
        // Batch 0 was told completed at t=5; then a cancel completes batch 2, whose last stored result is from t=4.
        Assert.True(StreamPosition.TryParse("3.0-1", out var told));
        var later = Status(ProgressStatus.Triggered,
            Batch(0, ProgressStatus.Completed, 1, 5),
            Batch(1, ProgressStatus.Completed, 2, 3),
            Batch(2, ProgressStatus.Completed, 4, 4),
            Batch(3, ProgressStatus.Cancelled, null, null));

        var missed = IngestionHistory.Since(later, told);

        Assert.Equal([(IngestionHistory.Completed, 2)], missed.Select(e => (e.Type, e.Batch)));
        Assert.Equal("3.0-2", missed.Aggregate(told, (position, e) => position.With(e)).ToString());
    }

    [Theory]
    [InlineData("0.", true)]
    [InlineData("3.0-1", true)]
    [InlineData("3.1", true)]
    [InlineData("4.", false)]     // more starts than there are
    [InlineData("3.0-2", false)]  // batch 2 has not completed
    [InlineData("3.3", false)]    // nor batch 3
    public void APositionIsReachableOnlyIfThisIngestionsStreamCouldHaveSentIt(string text, bool reachable)
    {
        Assert.True(StreamPosition.TryParse(text, out var position));
        Assert.Equal(reachable, IngestionHistory.IsReachable(OutOfOrder, position));
        Assert.Equal(text, position.ToString());
    }

    [Theory]
    [InlineData("7.0,2-4,9", new[] { 0, 2, 3, 4, 9 })]
    [InlineData("2.", new int[0])]
    [InlineData("5.3-4", new[] { 3, 4 })]
    public void TheCompletedBatchesAreWrittenAsRangesAndReadBack(string text, int[] completed)
    {
        Assert.True(StreamPosition.TryParse(text, out var position));
        Assert.Equal(completed, position.Completed.Order());
        Assert.Equal(text, position.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("3")]
    [InlineData(".1")]
    [InlineData("-1.0")]
    [InlineData("1.0.0")]
    [InlineData("3.2,1")]   // not ascending
    [InlineData("3.1-1,1")] // not apart
    [InlineData("3.4-2")]
    [InlineData("3.,1")]
    [InlineData("Done")]
    public void AnIdItNeverSendsIsNotAPosition(string text)
    {
        Assert.False(StreamPosition.TryParse(text, out _));
    }

    [Fact]
    public void TheEndIsItsOwnPosition()
    {
        Assert.True(StreamPosition.TryParse("done", out var done));
        Assert.True(done.Done);
        Assert.Equal("done", done.ToString());
        Assert.True(IngestionHistory.IsFinal(Status(ProgressStatus.Cancelled)));
        Assert.False(IngestionHistory.IsFinal(OutOfOrder));
    }
}
