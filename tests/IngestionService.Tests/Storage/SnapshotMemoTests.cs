using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Storage.Sqlite;

namespace IngestionService.Tests.Storage;

/// <summary>
/// The SQLite store's memory of status reads: an answer is served only within the generation it was read
/// in, and a generation stays bounded. (That every write starts a new one is a read-side contract test:
/// <see cref="QueueReaderContractTests.EveryKindOfWriteShowsInTheNextStatusRead"/>.)
/// </summary>
public sealed class SnapshotMemoTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void AnAnswerReadAcrossACommitIsNeverServed()
    {
        var memo = new SnapshotMemo();
        var id = Guid.CreateVersion7(T0);

        // A read takes the generation, a commit lands while it reads, then it keeps what it read.
        var readingIn = memo.Known;
        memo.Progressed();
        readingIn.Add(id, Read(id, 3), 64);

        Assert.True(readingIn.TryGet(id, out _));
        Assert.False(memo.Known.TryGet(id, out _));
    }

    [Fact]
    public void WhileACommitBecomesVisibleNothingIsServedOrKept()
    {
        var memo = new SnapshotMemo();
        var id = Guid.CreateVersion7(T0);
        memo.Known.Add(id, Read(id, 3), 64);
        var unknown = Guid.CreateVersion7(T0);
        memo.Unknown.Add(unknown, true, 64);

        // Between the commit and the new generation, one poll may read the new state from SQLite; the
        // next must not get the old one back from memory.
        memo.Progressing();
        memo.Creating();
        memo.Known.Add(Guid.NewGuid(), Read(id, 6), 64);

        Assert.False(memo.Known.TryGet(id, out _));
        Assert.False(memo.Unknown.TryGet(unknown, out _));
        Assert.Equal(1, memo.Known.Count);

        memo.Progressed();
        memo.Known.Add(id, Read(id, 6), 64);
        Assert.True(memo.Known.TryGet(id, out var fresh));
        Assert.Equal(6, fresh.Snapshot.Started);
    }

    [Fact]
    public void AnUnknownIdIsForgottenWhenIngestionsAreCreatedButNotWhenWorkMoves()
    {
        var memo = new SnapshotMemo();
        var id = Guid.CreateVersion7(T0);
        memo.Unknown.Add(id, true, 64);

        memo.Progressed();
        Assert.True(memo.Unknown.TryGet(id, out _));

        memo.Created();
        Assert.False(memo.Unknown.TryGet(id, out _));
    }

    [Fact]
    public void AKnownIngestionIsForgottenWhenWorkMovesButNotWhenOthersAreCreated()
    {
        var memo = new SnapshotMemo();
        var id = Guid.CreateVersion7(T0);
        memo.Known.Add(id, Read(id, 3), 64);

        memo.Created();
        Assert.True(memo.Known.TryGet(id, out var kept));
        Assert.Equal(3, kept.Snapshot.Started);

        memo.Progressed();
        Assert.False(memo.Known.TryGet(id, out _));
    }

    [Fact]
    public void AGenerationHoldsABoundedNumberOfEntriesAndBytes()
    {
        var memo = new SnapshotMemo();
        var known = memo.Known;
        for (var i = 0; i < SnapshotMemo.MaxEntries + 100; i++)
        {
            known.Add(Guid.NewGuid(), Read(Guid.NewGuid(), 0), 64);
        }

        Assert.Equal(SnapshotMemo.MaxEntries, known.Count);

        memo.Progressed();
        var large = memo.Known;
        large.Add(Guid.NewGuid(), Read(Guid.NewGuid(), 0), SnapshotMemo.MaxBytes - 10);
        var tooMuch = Guid.NewGuid();
        large.Add(tooMuch, Read(tooMuch, 0), 64);

        Assert.Equal(1, large.Count);
        Assert.False(large.TryGet(tooMuch, out _));
    }

    [Fact]
    public void AnEntryIsSizedByWhatItKeepsAlive()
    {
        var id = Guid.CreateVersion7(T0);
        var small = Read(id, 0);
        var large = new SnapshotMemo.Read(small.Snapshot with { Ids = [.. Enumerable.Range(1, 100_000)] }, 0, 0);

        Assert.True(large.Bytes >= 400_000);
        Assert.True(small.Bytes < 1_000);
    }

    private static SnapshotMemo.Read Read(Guid id, int started) =>
        new(new IngestionSnapshot(id, Priority.Low, T0, 3, [1, 2, 3], started, 0, [], []), IdsBefore: 0, RequeuedAhead: 0);
}
