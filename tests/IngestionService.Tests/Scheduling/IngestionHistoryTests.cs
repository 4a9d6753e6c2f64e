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
        Assert.Equal(new StreamPosition(3, 2), IngestionHistory.PositionOf(OutOfOrder));
    }

    [Fact]
    public void AResumeGetsWhatItMissedOfEachInTimeOrderAndWhereItThenStands()
    {
        var (missed, position) = IngestionHistory.Since(OutOfOrder, new StreamPosition(1, 0));

        Assert.Equal(
            [(IngestionHistory.Started, 1), (IngestionHistory.Completed, 1), (IngestionHistory.Started, 2), (IngestionHistory.Completed, 0)],
            missed.Select(e => (e.Type, e.Batch)));
        Assert.Equal(new StreamPosition(3, 2), position);
        Assert.Empty(IngestionHistory.Since(OutOfOrder, position).Events);
    }

    [Theory]
    [InlineData("0.0", true)]
    [InlineData("3.2", true)]
    [InlineData("4.0", false)] // more starts than there are
    [InlineData("2.3", false)] // more completions than there are
    public void APositionIsReachableOnlyIfThisIngestionsStreamCouldHaveSentIt(string text, bool reachable)
    {
        Assert.True(StreamPosition.TryParse(text, out var position));
        Assert.Equal(reachable, IngestionHistory.IsReachable(OutOfOrder, position));
        Assert.Equal(text, position.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("3")]
    [InlineData(".1")]
    [InlineData("1.")]
    [InlineData("-1.0")]
    [InlineData("1.0.0")]
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
