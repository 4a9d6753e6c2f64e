using System.Buffers;
using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Tests.Scheduling;

/// <summary>A cached status answer is reused only while it is exactly what rendering would give.</summary>
public sealed class StatusCacheTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly int[] Ids = [.. Enumerable.Range(1, 3000)];
    private static readonly WaitEstimate Estimate = new(T0.AddSeconds(5), TimeSpan.FromSeconds(5), 3);

    [Fact]
    public void NothingChangedGivesTheSameAnswerAndItIsWhatRenderingGives()
    {
        var cache = new StatusCache();
        var id = Guid.CreateVersion7();

        var first = cache.Render(Waiting(id, started: 3), Estimate);
        var second = cache.Render(Waiting(id, started: 3), Estimate);

        Assert.Same(first, second);
        Assert.Equal(Rendered(Waiting(id, started: 3), Estimate), first);
    }

    [Fact]
    public void AnyChangeItShowsRendersItAgain()
    {
        var cache = new StatusCache();
        var id = Guid.CreateVersion7();
        var before = cache.Render(Waiting(id, started: 3), Estimate);

        var started = cache.Render(Waiting(id, started: 6), Estimate);
        var later = Estimate with { NextAdmission = Estimate.NextAdmission.AddSeconds(5) };
        var finished = Waiting(id, started: 6) with { Spans = [new WindowSpan(0, 6, T0, T0.AddSeconds(1), WindowState.Completed)] };
        var retrying = finished with { Requeued = [4] };
        var paused = retrying with { PausedUntil = T0.AddMinutes(1) };
        var held = paused with { QueuePaused = true };

        byte[][] answers = [before, started, cache.Render(Waiting(id, started: 6), later), cache.Render(finished, later), cache.Render(retrying, later), cache.Render(paused, later), cache.Render(held, null), cache.Render(paused, later)];
        Assert.Equal(answers.Length - 1, answers.Distinct(ByteArrays.Instance).Count()); // the last is the resumed answer again
        Assert.Equal(Rendered(held, null), answers[^2]);
        Assert.Equal(Rendered(paused, later), answers[^1]);
        Assert.True(answers[^2].AsSpan().IndexOf("\"queue_paused\":true"u8) >= 0, "the answer while paused says so");
    }

    [Fact]
    public void OnceEveryIdHasStartedTheEstimateNoLongerMatters()
    {
        var cache = new StatusCache();
        var id = Guid.CreateVersion7();
        var done = Completed(id, Ids);

        var first = cache.Render(done, Estimate);
        var later = cache.Render(done, Estimate with { NextAdmission = Estimate.NextAdmission.AddMinutes(10) });

        Assert.Same(first, later);
    }

    [Fact]
    public void ACompletedIngestionsAnswerIsKeptForGoodAndServedWithoutItsSnapshot()
    {
        var cache = new StatusCache();
        var done = Completed(Guid.CreateVersion7(), Ids) with { PausedUntil = T0.AddMinutes(5) };
        var running = Waiting(Guid.CreateVersion7(), started: 3);

        var rendered = cache.Render(done, Estimate);
        cache.Render(running, Estimate);

        Assert.True(StatusCache.IsFinal(done));
        Assert.False(StatusCache.IsFinal(running));
        Assert.Same(rendered, cache.Final(done.Id, T0));
        Assert.Null(cache.Final(running.Id, T0));
        Assert.Null(cache.Final(Guid.CreateVersion7(), T0));
        // Finished (T0 + 1 s) before what the retention keeps: the store must say whether it is still there.
        Assert.Null(cache.Final(done.Id, T0.AddSeconds(2)));
        // The pause holds back work still to do; a completed ingestion has none, so its answer does not show it.
        Assert.Null(StatusReport.Build(done, Estimate).UpstreamPausedUntil);
        Assert.Equal(Rendered(done, Estimate), rendered);
    }

    [Fact]
    public void TheCacheHoldsABoundedNumberOfAnswers()
    {
        var cache = new StatusCache();

        for (var i = 0; i < 1100; i++)
        {
            cache.Render(Completed(Guid.CreateVersion7(), [1, 2, 3, 4, 5]), Estimate);
        }

        Assert.InRange(cache.Count, 1000, 1024);
    }

    [Fact]
    public void LargeAnswersAreBoundedByBytes()
    {
        var cache = new StatusCache();
        int[] ids = [.. Enumerable.Range(1, 100_000)];

        for (var i = 0; i < 8; i++)
        {
            cache.Render(new IngestionSnapshot(Guid.CreateVersion7(), Priority.Low, T0, 3, ids, 0, 0, [], []), Estimate);
        }

        Assert.InRange(cache.Bytes, 1, 32L * 1024 * 1024);
        Assert.InRange(cache.Count, 1, 7);
    }

    private static IngestionSnapshot Completed(Guid id, int[] ids) =>
        new(id, Priority.Low, T0, 3, ids, ids.Length, ids.Length, [new WindowSpan(0, ids.Length, T0, T0.AddSeconds(1), WindowState.Completed)], []);

    private static IngestionSnapshot Waiting(Guid id, int started) =>
        new(id, Priority.Low, T0, 3, Ids, started, 0, started == 0 ? [] : [new WindowSpan(0, started, T0, null, WindowState.Running)], [], IdsAhead: 7);

    private static byte[] Rendered(IngestionSnapshot snapshot, WaitEstimate? estimate)
    {
        var writer = new ArrayBufferWriter<byte>();
        StatusJson.Write(writer, snapshot, estimate);
        return writer.WrittenSpan.ToArray();
    }

    private sealed class ByteArrays : IEqualityComparer<byte[]>
    {
        public static readonly ByteArrays Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj) => obj.Length;
    }
}
