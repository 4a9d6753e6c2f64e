using IngestionService.Dispatch;
using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Scheduling;
using IngestionService.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace IngestionService.Tests.Scheduling;

/// <summary>The compliance figures judge each window by the limit in force when it started, from a window log given as it is read.</summary>
public sealed class ComplianceTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly RateLimit ThreePerFive = new(3, TimeSpan.FromSeconds(5));
    private static readonly RateLimit ThreePerTen = new(3, TimeSpan.FromSeconds(10));
    private static readonly RateLimit SixPerFive = new(6, TimeSpan.FromSeconds(5));

    [Fact]
    public async Task WindowsThatKeepEachLimitInForceThroughChangesAreNoViolation()
    {
        var monitor = await SampleAsync((0, 3, ThreePerFive), (5, 3, ThreePerFive), (15, 3, ThreePerTen), (25, 3, ThreePerTen), (35, 6, SixPerFive), (40, 6, SixPerFive));

        Assert.Equal(0, monitor.Violations);
        Assert.Equal(6, monitor.MaxIdsPerWindowSpan);
    }

    [Theory]
    [InlineData(4, 3)]   // the window after 3 per 10 s came 4 s later under 6 per 5 s: too soon for the old limit
    [InlineData(10, 4)]  // spaced right, but four ids in a window of three
    public async Task AWindowTooSoonAfterTheLastOrWithTooManyIdsIsAViolation(int secondsAfter, int ids)
    {
        var monitor = await SampleAsync((0, 3, ThreePerTen), (secondsAfter, ids, ids > 3 ? ThreePerTen : SixPerFive));

        Assert.Equal(1, monitor.Violations);
    }

    private static async Task<QueueMonitor> SampleAsync(params (int Second, int Ids, RateLimit Limit)[] windows)
    {
        var log = windows.Select((w, i) => new WindowRecord(
            i + 1, T0.AddSeconds(w.Second), T0.AddSeconds(w.Second + 1), WindowState.Completed,
            [new WindowRecordItem(Guid.CreateVersion7(), Priority.Medium, 0, [.. Enumerable.Range(1, w.Ids)])], Limit: w.Limit)).Reverse().ToList();
        var monitor = new QueueMonitor(new WindowLogOnly(log), TimeProvider.System, new LimitInForce(Options.Create(new IngestionOptions())), NullLogger<QueueMonitor>.Instance);
        await monitor.SampleAsync(CancellationToken.None);
        return monitor;
    }

    /// <summary>A read side that has only a window log (newest first), an empty queue and no pause.</summary>
    private sealed class WindowLogOnly(IReadOnlyList<WindowRecord> windows) : IQueueReader
    {
        public Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken) => Task.FromResult(windows);

        public Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken) => Task.FromResult(default(QueueDepth));

        public Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken) => Task.FromResult<DateTimeOffset?>(null);

        public Task<QueuePause?> GetQueuePauseAsync(CancellationToken cancellationToken) => Task.FromResult<QueuePause?>(null);

        public Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<LimitChange>> GetLimitChangesAsync(int limit, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, IngestionFilter filter, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task ProbeAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<long> GetStoreBytesAsync(CancellationToken cancellationToken) => Task.FromResult(0L);

        public Task<IReadOnlyList<string>> GetTraceParentsAsync(IReadOnlyCollection<Guid> ingestionIds, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
