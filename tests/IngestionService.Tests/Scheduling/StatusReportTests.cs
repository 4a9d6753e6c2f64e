using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Tests.Scheduling;

/// <summary>How batch and overall statuses are derived from counters and window spans.</summary>
public sealed class StatusReportTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly Guid Id = Guid.Parse("01a209e5-026d-7da3-b555-36e958de1e4b");

    [Fact]
    public void IdsAreChunkedInOrderByTheBatchSize()
    {
        var status = StatusReport.Build(Snapshot(started: 0));

        Assert.Equal([[1, 2, 3], [4, 5, 6], [7]], status.Batches.Select(b => b.Ids));
        Assert.Equal(7, status.TotalIds);
    }

    [Fact]
    public void NothingStartedIsYetToStartEverywhere()
    {
        var status = StatusReport.Build(Snapshot(started: 0));

        Assert.Equal(ProgressStatus.YetToStart, status.Status);
        Assert.All(status.Batches, b => Assert.Equal(ProgressStatus.YetToStart, b.Status));
        Assert.All(status.Batches, b => Assert.Null(b.TriggeredAt));
    }

    [Fact]
    public void ARunningWindowMakesItsBatchesTriggered()
    {
        var status = StatusReport.Build(Snapshot(started: 3, spans: [Span(0, 3, 0, null, WindowState.Running)]));

        Assert.Equal(ProgressStatus.Triggered, status.Status);
        Assert.Equal([ProgressStatus.Triggered, ProgressStatus.YetToStart, ProgressStatus.YetToStart], status.Batches.Select(b => b.Status));
        Assert.Equal(T0.UtcDateTime, status.Batches[0].TriggeredAt);
        Assert.Null(status.Batches[0].CompletedAt);
    }

    [Fact]
    public void ABatchSplitOverTwoWindowsIsTriggeredUntilTheSecondFinishes()
    {
        var spans = new[] { Span(0, 2, 0, 1, WindowState.Completed), Span(2, 3, 5, null, WindowState.Running) };
        var status = StatusReport.Build(Snapshot(started: 5, completed: 2, spans: spans));

        Assert.Equal([ProgressStatus.Triggered, ProgressStatus.Triggered, ProgressStatus.YetToStart], status.Batches.Select(b => b.Status));
        Assert.Equal(T0.UtcDateTime, status.Batches[0].TriggeredAt);
        Assert.Equal((T0 + TimeSpan.FromSeconds(5)).UtcDateTime, status.Batches[1].TriggeredAt);
    }

    [Fact]
    public void ABatchIsCompletedWhenItsLastWindowFinishes()
    {
        var spans = new[] { Span(0, 2, 0, 1, WindowState.Completed), Span(2, 3, 5, 6, WindowState.Completed) };
        var status = StatusReport.Build(Snapshot(started: 5, completed: 5, spans: spans));

        Assert.Equal([ProgressStatus.Completed, ProgressStatus.Triggered, ProgressStatus.YetToStart], status.Batches.Select(b => b.Status));
        Assert.Equal((T0 + TimeSpan.FromSeconds(6)).UtcDateTime, status.Batches[0].CompletedAt);
        Assert.Equal(ProgressStatus.Triggered, status.Status);
    }

    [Fact]
    public void EverythingDoneIsCompleted()
    {
        var spans = new[] { Span(0, 3, 0, 1, WindowState.Completed), Span(3, 3, 5, 6, WindowState.Completed), Span(6, 1, 10, 11, WindowState.Completed) };
        var status = StatusReport.Build(Snapshot(started: 7, completed: 7, spans: spans));

        Assert.Equal(ProgressStatus.Completed, status.Status);
        Assert.All(status.Batches, b => Assert.Equal(ProgressStatus.Completed, b.Status));
        Assert.Equal((T0 + TimeSpan.FromSeconds(11)).UtcDateTime, status.Batches[2].CompletedAt);
    }

    [Fact]
    public void IdsWaitingToBeFetchedAgainKeepTheirBatchTriggeredWithItsFirstStartTime()
    {
        var spans = new[] { Span(0, 3, 0, null, WindowState.Abandoned) };
        var status = StatusReport.Build(Snapshot(started: 3, spans: spans, requeued: [0, 1, 2]));

        Assert.Equal(ProgressStatus.Triggered, status.Batches[0].Status);
        Assert.Equal(T0.UtcDateTime, status.Batches[0].TriggeredAt);
        Assert.Equal(ProgressStatus.Triggered, status.Status);
    }

    [Fact]
    public void BatchIdsAreStableAndDistinct()
    {
        var first = StatusReport.Build(Snapshot(started: 0));
        var second = StatusReport.Build(Snapshot(started: 0));

        Assert.Equal(first.Batches.Select(b => b.BatchId), second.Batches.Select(b => b.BatchId));
        Assert.Equal(3, first.Batches.Select(b => b.BatchId).Distinct().Count());
        Assert.All(first.Batches, b => Assert.Equal(8, b.BatchId.Version));
        Assert.All(first.Batches, b => Assert.Equal(0b10, b.BatchId.Variant >> 2));
    }

    [Fact]
    public void WaitingBatchesAreEstimatedFromTheIdsAheadAndTheRate()
    {
        var next = T0.AddSeconds(2);
        var snapshot = Snapshot(started: 0) with { IdsAhead = 4 };

        var status = StatusReport.Build(snapshot, new WaitEstimate(next, TimeSpan.FromSeconds(5), 3));

        Assert.Equal(4, status.IdsAhead);
        Assert.Equal(
            [next.AddSeconds(5).UtcDateTime, next.AddSeconds(10).UtcDateTime, next.AddSeconds(15).UtcDateTime],
            status.Batches.Select(b => b.EstimatedStartAt));
    }

    [Fact]
    public void StartedBatchesHaveNoEstimateAndNothingIsAheadOnceAllStarted()
    {
        var spans = new[] { Span(0, 3, 0, 1, WindowState.Completed), Span(3, 3, 5, 6, WindowState.Completed), Span(6, 1, 10, null, WindowState.Running) };

        var status = StatusReport.Build(Snapshot(started: 7, completed: 6, spans: spans), new WaitEstimate(T0, TimeSpan.FromSeconds(5), 3));

        Assert.Null(status.IdsAhead);
        Assert.All(status.Batches, b => Assert.Null(b.EstimatedStartAt));
    }

    [Fact]
    public void BatchIdsOfDifferentIngestionsDiffer()
    {
        var one = BatchIds.Of(Guid.CreateVersion7());
        var other = BatchIds.Of(Guid.CreateVersion7());

        var ids = Enumerable.Range(0, 10_000).SelectMany(i => new[] { one.For(i), other.For(i) }).ToList();

        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    private static WindowSpan Span(int first, int count, int startSecond, int? finishSecond, WindowState state) =>
        new(first, count, T0.AddSeconds(startSecond), finishSecond is { } f ? T0.AddSeconds(f) : null, state);

    private static IngestionSnapshot Snapshot(int started, int completed = 0, WindowSpan[]? spans = null, int[]? requeued = null) =>
        new(Id, Priority.Medium, T0, 3, [1, 2, 3, 4, 5, 6, 7], started, completed, spans ?? [], requeued ?? []);
}
