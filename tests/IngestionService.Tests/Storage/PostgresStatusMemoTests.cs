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
/// The memory on a real server: what one instance commits shows in another instance's next status read,
/// whatever it was, because the database tells every listening session of each such commit; and the
/// commits that change nothing a status shows tell nobody.
/// </summary>
public sealed class PostgresStatusMemoServerTests() : StoreContract(new PostgresBackend())
{
    private PostgresBackend Postgres => (PostgresBackend)Backend;

    [Fact]
    public async Task EveryKindOfWriteOnOneInstanceShowsInTheNextStatusReadOnAnother()
    {
        var writer = await OpenAsync();
        var reader = await OpenAsync();

        // Each step reads twice first, so the reader has the old answer in memory when the write comes.
        async Task<IngestionSnapshot?> ReadAsync(Guid id)
        {
            await reader.GetIngestionAsync(id, Token);
            await reader.GetIngestionAsync(id, Token);
            return await reader.GetIngestionAsync(id, Token);
        }

        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var announced = new NewIngestion(Guid.CreateVersion7(now), Priority.Low, now, 3, [1, 2, 3, 4, 5, 6, 7]);
        Assert.Null(await ReadAsync(announced.Id));
        await writer.EnqueueAsync(announced, Token);
        var id = announced.Id;
        Assert.Equal(0, (await ReadAsync(id))!.IdsAhead);

        await EnqueueAsync(writer, Priority.High, 8, 9);
        Assert.Equal(2, (await ReadAsync(id))!.IdsAhead);

        var window = await ClaimEventuallyAsync(writer, TinyWindow); // 8, 9, 1
        var claimed = await reader.GetIngestionAsync(id, Token);
        Assert.Equal((1, WindowState.Running), (claimed!.Started, Assert.Single(claimed.Spans).State));

        await ReadAsync(id);
        await CompleteAsync(writer, window);
        var completed = await reader.GetIngestionAsync(id, Token);
        Assert.Equal((1, WindowState.Completed), (completed!.Completed, Assert.Single(completed.Spans).State));

        await writer.PauseQueueAsync("maintenance", Token);
        Assert.True((await ReadAsync(id))!.QueuePaused);
        await writer.ResumeQueueAsync(Token);
        Assert.False((await ReadAsync(id))!.QueuePaused);

        Assert.Equal(ReprioritiseOutcome.Moved, await writer.ReprioritiseAsync(id, Priority.Medium, Token));
        Assert.Equal(Priority.Medium, (await ReadAsync(id))!.Priority);

        Assert.Equal(CancelOutcome.Cancelled, await writer.CancelAsync(id, Token));
        Assert.Equal(1, (await ReadAsync(id))!.Cancel!.From);

        // Finished (its only started id completed, the rest cancelled), it goes with the next sweep.
        Assert.NotEqual(0, (await writer.PurgeAsync(new IngestionService.Scheduling.PurgeRequest(DateTimeOffset.UtcNow.AddMinutes(1), DateTimeOffset.UtcNow.AddMinutes(1)), Token)).Ingestions);
        Assert.Null(await ReadAsync(id));
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

        // Reads, and a claim that finds nothing to take (its statements change no row): nothing to tell.
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
        var reader = await OpenAsync();
        var id = await EnqueueAsync(writer, Priority.Low, 1, 2, 3);
        Assert.Equal(0, (await reader.GetIngestionAsync(id, Token))!.Started);
        Assert.Equal(0, (await reader.GetIngestionAsync(id, Token))!.Started);

        // The reader's listening sessions end (a failover, an administrator), and work moves meanwhile.
        var cut = await Postgres.Database!.ScalarAsync<long>("""
            SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND (query = 'SELECT NULL' OR query LIKE 'LISTEN ingestion_status%' OR query = 'UNLISTEN *' OR query LIKE '%LATERAL ingestion_status(r.id)%')
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
        var reader = await OpenAsync();
        var id = await EnqueueAsync(writer, Priority.Low, 1, 2, 3);
        Assert.Equal(0, (await reader.GetIngestionAsync(id, Token))!.Started);
        Assert.Equal(0, (await reader.GetIngestionAsync(id, Token))!.Started);

        // Unused, the reader's sessions stop listening: a commit now is heard by nobody there.
        await Eventually.ReturnsAsync(
            () => Postgres.Database!.ScalarAsync<long>("""
                SELECT count(*) FILTER (WHERE query <> 'UNLISTEN *') FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND (query = 'SELECT NULL' OR query = 'UNLISTEN *' OR query LIKE '%LATERAL ingestion_status(r.id)%')
                HAVING count(*) > 0
                """),
            listening => listening == 0,
            Deadline,
            "the reader's sessions to stop listening");
        await CompleteAsync(writer, await ClaimEventuallyAsync(writer, TinyWindow));

        var after = await reader.GetIngestionAsync(id, Token);
        Assert.Equal((3, 3), (after!.Started, after.Completed));
    }

    private static async Task FenceAsync(NpgsqlConnection listener) => await ExecuteAsync(listener, PostgresStatusSessions.Fence);

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(Token);
    }
}
