using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Storage.Postgres;
using IngestionService.Tests.Infrastructure;
using Npgsql;

namespace IngestionService.Tests.Storage;

/// <summary>
/// The shared store's memory of status reads: which notification forgets what, without a server.
/// </summary>
public sealed class PostgresStatusMemoTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void NewIngestionsForgetUnknownIdsAndTheIngestionsBelowTheirPriorityButNeverTheHighest()
    {
        var memo = new PostgresStatusMemo();
        var (high, medium, low, unknown) = Fill(memo);

        memo.Heard(PostgresStatusMemo.Created);

        var now = memo.Current;
        Assert.True(now.TryGet(high, out var kept, out _));
        Assert.Equal(Priority.High, kept!.Priority);
        Assert.False(now.TryGet(medium, out _, out _));
        Assert.False(now.TryGet(low, out _, out _));
        Assert.False(now.TryGet(unknown, out _, out _));
    }

    [Fact]
    public void AnyOtherChangeForgetsEveryIngestionButNoUnknownId()
    {
        var memo = new PostgresStatusMemo();
        var (high, medium, low, unknown) = Fill(memo);

        memo.Heard(PostgresStatusMemo.Changed);

        var now = memo.Current;
        Assert.All(new[] { high, medium, low }, id => Assert.False(now.TryGet(id, out _, out _)));
        Assert.True(now.TryGet(unknown, out var snapshot, out var which));
        Assert.Null(snapshot);
        Assert.Equal(3, which);
    }

    [Fact]
    public void AnAnswerReadAcrossANotificationIsNeitherKeptNorServed()
    {
        var memo = new PostgresStatusMemo();
        var id = Guid.CreateVersion7(T0);

        // A group takes the generations, a notification arrives while its statement runs, then it keeps what it read.
        var taken = memo.Current;
        memo.Heard(PostgresStatusMemo.Changed);
        taken.Keep(id, Snapshot(id, Priority.Low));

        Assert.False(taken.IsOpen(2));
        Assert.False(memo.Current.TryGet(id, out _, out _));
    }

    [Fact]
    public void ASessionThatStartsListeningForgetsEverything()
    {
        var memo = new PostgresStatusMemo();
        var (high, medium, low, unknown) = Fill(memo);

        memo.Forget();

        var now = memo.Current;
        Assert.All(new[] { high, medium, low, unknown }, id => Assert.False(now.TryGet(id, out _, out _)));
    }

    [Fact]
    public void TwoReadsOfOneGenerationThatDisagreeAreBothForgotten()
    {
        // A commit visible to the second read but not yet heard: neither answer may be served again.
        var memo = new PostgresStatusMemo();
        var id = Guid.CreateVersion7(T0);
        var taken = memo.Current;
        taken.Keep(id, Snapshot(id, Priority.Low));
        taken.Keep(id, Snapshot(id, Priority.Low));
        Assert.True(memo.Current.TryGet(id, out _, out _)); // the same answer twice is kept

        taken.Keep(id, Snapshot(id, Priority.Low) with { Started = 3 });
        Assert.False(memo.Current.TryGet(id, out _, out _));

        // Kept under two priorities (a move between the reads), or as found and as unknown (a sweep): the same.
        var moved = Guid.CreateVersion7(T0);
        var fresh = new PostgresStatusMemo().Current;
        fresh.Keep(moved, Snapshot(moved, Priority.High));
        fresh.Keep(moved, Snapshot(moved, Priority.Medium));
        Assert.False(fresh.IsOpen(0));
        Assert.False(fresh.TryGet(moved, out _, out _));

        var swept = Guid.CreateVersion7(T0);
        var again = new PostgresStatusMemo().Current;
        again.Keep(swept, Snapshot(swept, Priority.High));
        again.Keep(swept, null);
        Assert.False(again.TryGet(swept, out _, out _));
    }

    private static (Guid High, Guid Medium, Guid Low, Guid Unknown) Fill(PostgresStatusMemo memo)
    {
        var (high, medium, low, unknown) = (Guid.CreateVersion7(T0), Guid.CreateVersion7(T0), Guid.CreateVersion7(T0), Guid.CreateVersion7(T0));
        var generations = memo.Current;
        generations.Keep(high, Snapshot(high, Priority.High));
        generations.Keep(medium, Snapshot(medium, Priority.Medium));
        generations.Keep(low, Snapshot(low, Priority.Low));
        generations.Keep(unknown, null);
        Assert.True(memo.Current.TryGet(low, out _, out var which));
        Assert.Equal(2, which);
        return (high, medium, low, unknown);
    }

    private static IngestionSnapshot Snapshot(Guid id, Priority priority) => new(id, priority, T0, 3, [1, 2, 3], 0, 0, [], []);
}

/// <summary>
/// The memory on a real server: what one instance commits shows in another instance's very next status
/// read, whatever it was, although that read would otherwise be answered from memory (each step checks
/// that the read before the write was); and the commits that change nothing a status shows tell nobody.
/// The reader's sessions never go quiet here, so nothing is forgotten but by what it hears.
/// </summary>
public sealed class PostgresStatusMemoServerTests() : StoreContract(new PostgresBackend())
{
    private PostgresBackend Postgres => (PostgresBackend)Backend;

    [Fact]
    public async Task SubmissionsClaimsAndOutcomesOnOneInstanceShowInTheNextReadOnAnother()
    {
        var writer = await OpenAsync();
        await using var reader = await OpenReaderAsync();

        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var key = new IdempotencyKey("memo-test", IngestionSubmitter.RequestHash(IngestParseResult.Ok(Priority.Low, [1, 2, 3, 4, 5, 6, 7])), now.AddHours(1));
        var announced = new NewIngestion(Guid.CreateVersion7(now), Priority.Low, now, 3, [1, 2, 3, 4, 5, 6, 7], key);
        var id = announced.Id;
        Assert.Equal(0, (await ReadAfterAsync(reader, id, () => writer.EnqueueAsync(announced, Token)))!.IdsAhead);

        var high = Guid.Empty;
        Assert.Equal(2, (await ReadAfterAsync(reader, id, async () => high = await EnqueueAsync(writer, Priority.High, 8, 9)))!.IdsAhead);

        // New work of the same priority is behind it and changes nothing it shows: still answered from memory.
        await ReadFromMemoryAsync(reader, high);
        await EnqueueAsync(writer, Priority.High, 10);
        var fromMemory = reader.StatusReads!.AnsweredFromMemory;
        var highAfter = await reader.GetIngestionAsync(high, Token);
        Assert.Equal(fromMemory + 1, reader.StatusReads.AnsweredFromMemory);
        Assert.Equal((0, 0L), (highAfter!.Started, highAfter.IdsAhead));

        ClaimedWindow first = null!;
        var claimed = await ReadAfterAsync(reader, high, async () => first = await ClaimEventuallyAsync(writer, TinyWindow)); // 8, 9, 10
        Assert.Equal((2, WindowState.Running), (claimed!.Started, Assert.Single(claimed.Spans).State));
        Assert.Equal((0, 0L), ((await reader.GetIngestionAsync(id, Token))!.Started, (await reader.GetIngestionAsync(id, Token))!.IdsAhead));
        var done = await ReadAfterAsync(reader, high, () => CompleteAsync(writer, first));
        Assert.Equal((2, WindowState.Completed), (done!.Completed, Assert.Single(done.Spans).State));

        // 1 fails for good, 2 is retried later, 3 succeeds, and the upstream asks for a pause.
        ClaimedWindow second = null!;
        Assert.Equal(3, (await ReadAfterAsync(reader, id, async () => second = await ClaimEventuallyAsync(writer, TinyWindow)))!.Started);
        var failure = new FetchOutcome(FetchState.Failed, 404, null, false, "not found", 1, 0, null);
        var outcome = await ReadAfterAsync(reader, id, () => writer.CompleteWindowAsync(
            second, new WindowOutcome([failure, Retry(second.Items[1], TimeSpan.FromMinutes(5)), Succeeded(second.Items[2])], TimeSpan.FromMinutes(1)), Token));
        Assert.Equal([0], outcome!.Failed);
        Assert.Equal([1], outcome.Requeued);
        Assert.Equal(2, outcome.Completed);
        Assert.NotNull(outcome.PausedUntil);
    }

    [Fact]
    public async Task OperatorActionsAndExpiriesOnOneInstanceShowInTheNextReadOnAnother()
    {
        var writer = await OpenAsync();
        await using var reader = await OpenReaderAsync();
        var id = await EnqueueAsync(writer, Priority.Low, 1, 2, 3, 4, 5, 6, 7);

        Assert.True((await ReadAfterAsync(reader, id, () => writer.PauseQueueAsync("maintenance", Token)))!.QueuePaused);
        Assert.False((await ReadAfterAsync(reader, id, () => writer.ResumeQueueAsync(Token)))!.QueuePaused);
        Assert.Equal(Priority.Medium, (await ReadAfterAsync(reader, id, () => writer.ReprioritiseAsync(id, Priority.Medium, Token)))!.Priority);

        var window = await ClaimEventuallyAsync(writer, TinyWindow); // 1, 2, 3
        var abandoned = await ReadAfterAsync(reader, id, () => writer.AbandonWindowAsync(window, Token));
        Assert.Equal([0, 1, 2], abandoned!.Requeued);
        Assert.Equal(WindowState.Abandoned, Assert.Single(abandoned.Spans).State);

        // Due a moment from now, so it expires at the next admitted claim.
        var notAfter = DateTimeOffset.UtcNow.AddMilliseconds(300);
        var expiring = await EnqueueAsync(writer, Priority.Low, notAfter, 20);
        await Eventually.HoldsAsync(() => DateTimeOffset.UtcNow > notAfter.AddMilliseconds(10), Deadline, "the ingestion's deadline to pass");
        var expired = await ReadAfterAsync(reader, expiring, () => ClaimEventuallyAsync(writer, TinyWindow)); // 1, 2, 3 again
        Assert.Equal(CancelReason.Expired, expired!.Cancel!.Reason);

        var cancelled = await ReadAfterAsync(reader, id, async () => Assert.Equal(CancelOutcome.Cancelled, await writer.CancelAsync(id, Token)));
        Assert.Equal((3, CancelReason.Requested), (cancelled!.Cancel!.From, cancelled.Cancel.Reason));

        var swept = await ReadAfterAsync(reader, expiring, () => writer.PurgeAsync(new IngestionService.Scheduling.PurgeRequest(DateTimeOffset.UtcNow.AddMinutes(1), DateTimeOffset.UtcNow.AddMinutes(1)), Token));
        Assert.Null(swept);
    }

    [Fact]
    public async Task AWindowTakenBackFromAnInstanceThatStoppedShowsInTheNextReadOnAnother()
    {
        var dead = await Postgres.OpenAsync(TimeSpan.FromSeconds(1));
        var survivor = await OpenAsync();
        await using var reader = await OpenReaderAsync();
        var id = await EnqueueAsync(dead, Priority.Low, 1, 2, 3, 4);
        var window = await ClaimEventuallyAsync(dead, TinyWindow);
        ((PostgresQueueStore)dead.Queue).StopRenewingLeases();

        var takenBack = await ReadAfterAsync(reader, id, async () =>
            await Eventually.ReturnsAsync(() => survivor.ClaimWindowAsync(3, TinyWindow, Token), claim => claim.Window is not null, Deadline, "the lease to run out"));
        Assert.Equal([WindowState.Abandoned, WindowState.Running], takenBack!.Spans.Select(span => span.State));
        Assert.Equal(window.StartedAt, takenBack.Spans[0].StartedAt);
        await dead.DisposeAsync();
    }

    [Fact]
    public async Task OnlyCommitsThatChangeWhatAStatusShowsTellTheListeners()
    {
        var store = await OpenAsync();
        await using var listener = new NpgsqlConnection(Postgres.Database!.ConnectionString);
        await listener.OpenAsync(Token);
        var heard = new List<string>();
        listener.Notification += (_, notification) => heard.Add(notification.Payload);
        await ExecuteAsync(listener, $"LISTEN {PostgresStatusMemo.Channel}");

        // Reads, and a claim the limiter refuses (its statements change no row): nothing to tell.
        var waiting = await EnqueueAsync(store, Priority.Low, 1, 2, 3, 4);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        await FenceAsync(listener);
        heard.Clear();
        Assert.Null((await store.ClaimWindowAsync(3, LongWindow, Token)).Window);
        Assert.NotNull(await store.GetIngestionAsync(waiting, Token));
        await store.GetQueueDepthAsync(Token);
        await FenceAsync(listener);
        Assert.Empty(heard);

        // The answer to a statement on a listening session comes after what was committed before it.
        await EnqueueAsync(store, Priority.High, 5);
        await FenceAsync(listener);
        Assert.Equal([PostgresStatusMemo.Created], heard);

        heard.Clear();
        await store.PauseQueueAsync(null, Token);
        await FenceAsync(listener);
        Assert.Equal([PostgresStatusMemo.Changed], heard);
    }

    [Fact]
    public async Task AReaderWhoseSessionsWereCutOffReadsAfreshAndMissesNoWrite()
    {
        var writer = await OpenAsync();
        await using var reader = await OpenReaderAsync();
        var id = await EnqueueAsync(writer, Priority.Low, 1, 2, 3);
        await ReadFromMemoryAsync(reader, id);

        // The reader's listening sessions end (a failover, an administrator), and work moves meanwhile.
        var cut = await Postgres.Database!.ScalarAsync<long>($"""
            SELECT count(pg_terminate_backend(l.pid)) FROM pg_stat_activity l
            WHERE l.datname = current_database() AND l.pid <> pg_backend_pid() AND l.query = '{PostgresStatusSessions.Fence}'
            """);
        Assert.InRange(cut, 1, 2);
        await CompleteAsync(writer, await ClaimEventuallyAsync(writer, TinyWindow));

        var after = await reader.GetIngestionAsync(id, Token);
        Assert.Equal((3, 3), (after!.Started, after.Completed));
    }

    [Fact]
    public async Task ASessionLeftUnusedStopsListeningAndForgetsWhatItKnewWhenUsedAgain()
    {
        var writer = await OpenAsync();
        await using var reader = await Postgres.OpenAsync(TimeSpan.FromSeconds(10), statusQuietAfter: TimeSpan.FromMilliseconds(100));
        var id = await EnqueueAsync(writer, Priority.Low, 1, 2, 3);
        await ReadFromMemoryAsync(reader, id);

        // Unused, the reader's sessions stop listening: a commit now is heard by nobody there.
        await Eventually.ReturnsAsync(
            () => Postgres.Database!.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'UNLISTEN *'"),
            quiet => quiet >= 1,
            Deadline,
            "the reader's session to stop listening");
        await CompleteAsync(writer, await ClaimEventuallyAsync(writer, TinyWindow));

        var after = await reader.GetIngestionAsync(id, Token);
        Assert.Equal((3, 3), (after!.Started, after.Completed));
    }

    /// <summary>A second instance that only reads, whose sessions never go quiet.</summary>
    private Task<StoreUnderTest> OpenReaderAsync() => Postgres.OpenAsync(TimeSpan.FromSeconds(10), statusQuietAfter: Timeout.InfiniteTimeSpan);

    /// <summary>Reads until a read of <paramref name="id"/> is answered from memory.</summary>
    private static Task<bool> ReadFromMemoryAsync(StoreUnderTest reader, Guid id) => Eventually.ReturnsAsync(
        async () =>
        {
            var before = reader.StatusReads!.AnsweredFromMemory;
            await reader.GetIngestionAsync(id, Token);
            return reader.StatusReads.AnsweredFromMemory > before;
        },
        fromMemory => fromMemory,
        Deadline,
        "a read answered from memory");

    /// <summary>The reader's first read after <paramref name="write"/>, with the answer before it in memory.</summary>
    private static async Task<IngestionSnapshot?> ReadAfterAsync(StoreUnderTest reader, Guid id, Func<Task> write)
    {
        await ReadFromMemoryAsync(reader, id);
        await write();
        return await reader.GetIngestionAsync(id, Token);
    }

    private static async Task FenceAsync(NpgsqlConnection listener) => await ExecuteAsync(listener, PostgresStatusSessions.Fence);

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Token);
    }
}
