using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;

namespace IngestionService.Tests.Scheduling;

/// <summary>The global order, the merge of handed-back ids with unstarted ones, and runs of positions.</summary>
public sealed class QueueOrderTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void IdsAreOrderedByPriorityThenCreatedTimeThenArrivalThenPosition()
    {
        var ids = new List<QueuedId>
        {
            Id(seq: 4, Priority.Low, T0, position: 0),
            Id(seq: 3, Priority.High, T0.AddSeconds(1), position: 1),
            Id(seq: 2, Priority.High, T0.AddSeconds(1), position: 0),
            Id(seq: 1, Priority.High, T0.AddSeconds(1), position: 5),
            Id(seq: 9, Priority.High, T0, position: 2),
            Id(seq: 5, Priority.Medium, T0, position: 0),
        };

        ids.Sort(QueuedId.InOrder);

        Assert.Equal([(9, 2), (1, 5), (2, 0), (3, 1), (5, 0), (4, 0)], ids.Select(id => ((int)id.IngestionSeq, id.Position)));
    }

    [Fact]
    public void UnstartedPositionsAreTakenInOrderUntilTheWindowIsFull()
    {
        var unstarted = new List<QueuedId>();

        Assert.True(QueueOrder.AddUnstarted(unstarted, 3, 1, Guid.NewGuid(), Priority.High, T0, started: 5, total: 6));
        Assert.False(QueueOrder.AddUnstarted(unstarted, 3, 2, Guid.NewGuid(), Priority.High, T0, started: 0, total: 10));
        Assert.False(QueueOrder.AddUnstarted(unstarted, 3, 3, Guid.NewGuid(), Priority.High, T0, started: 0, total: 10));

        Assert.Equal([(1L, 5), (2L, 0), (2L, 1)], unstarted.Select(id => (id.IngestionSeq, id.Position)));
        Assert.All(unstarted, id => Assert.False(id.Requeued));
    }

    [Fact]
    public void HandedBackIdsKeepTheirPlaceAheadOfLaterWorkAndBehindMoreUrgentWork()
    {
        // Positions 1 and 2 of a MEDIUM request were handed back; its position 3 and a later MEDIUM wait,
        // and a HIGH request came in since.
        var requeued = new List<QueuedId> { Id(seq: 1, Priority.Medium, T0, position: 1, requeued: true), Id(seq: 1, Priority.Medium, T0, position: 2, requeued: true) };
        var unstarted = new List<QueuedId> { Id(seq: 3, Priority.High, T0.AddSeconds(9), position: 0), Id(seq: 1, Priority.Medium, T0, position: 3), Id(seq: 2, Priority.Medium, T0.AddSeconds(1), position: 0) };

        var plan = QueueOrder.Merge(requeued, unstarted, 3);

        Assert.Equal([(3L, 0), (1L, 1), (1L, 2)], plan.Chosen.Select(id => (id.IngestionSeq, id.Position)));
        Assert.Equal([(3L, 1)], plan.Advances);
        Assert.Equal([(1L, 1), (1L, 2)], plan.Unqueued.Select(id => (id.IngestionSeq, id.Position)));
    }

    [Fact]
    public void APlanCountsEachIngestionsUnstartedIdsOnceAndNothingWhenEmpty()
    {
        var unstarted = new List<QueuedId> { Id(seq: 7, Priority.Low, T0, position: 4), Id(seq: 7, Priority.Low, T0, position: 5), Id(seq: 8, Priority.Low, T0, position: 0) };

        var plan = QueueOrder.Merge([], unstarted, 3);
        var empty = QueueOrder.Merge([], [], 3);

        Assert.Equal([(7L, 2), (8L, 1)], plan.Advances);
        Assert.Empty(plan.Unqueued);
        Assert.True(empty.IsEmpty);
        Assert.Empty(empty.Advances);
    }

    [Fact]
    public void SlicesAreRunsOfConsecutivePositionsOfOneIngestionInTheChosenOrder()
    {
        var chosen = new List<QueuedId>
        {
            Id(seq: 1, Priority.High, T0, position: 4),
            Id(seq: 2, Priority.High, T0, position: 0),
            Id(seq: 2, Priority.High, T0, position: 1),
            Id(seq: 2, Priority.High, T0, position: 3),
        };

        Assert.Equal([0..1, 1..3, 3..4], new WindowPlan(chosen).Slices);
        Assert.Empty(new WindowPlan([]).Slices);
    }

    [Fact]
    public void AWindowIsLoggedAsOneRowPerRunOrderedByIngestionAndPosition()
    {
        var ingestion = Guid.NewGuid();
        WindowItem[] items =
        [
            new(2, ingestion, Priority.High, 7, 70),
            new(1, ingestion, Priority.Low, 3, 30),
            new(2, ingestion, Priority.High, 6, 60),
            new(1, ingestion, Priority.Low, 1, 10),
        ];

        var runs = PositionRuns.OfWindow(items);

        Assert.Equal(
            [(1L, 1, new[] { 10 }), (1L, 3, [30]), (2L, 6, [60, 70])],
            runs.Select(run => (run.IngestionSeq, run.FirstPosition, run.Ids)));
    }

    private static QueuedId Id(long seq, Priority priority, DateTimeOffset createdAt, int position, bool requeued = false) =>
        new(seq, Guid.Empty, priority, createdAt, position, requeued);
}
