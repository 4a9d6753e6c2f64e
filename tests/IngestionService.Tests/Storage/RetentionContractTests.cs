using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;
using Npgsql;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What every backend deletes in a retention batch (<see cref="Retention"/>) and what it never does. The
/// batch is given its instants, so "older than the retention" is a cutoff the test picks: one an hour ago
/// deletes nothing just finished, one a minute ahead deletes everything finished so far.
/// </summary>
public abstract class RetentionContractTests(IStoreBackend backend) : StoreContract(backend)
{
    protected static PurgeRequest Everything => new(DateTimeOffset.UtcNow.AddMinutes(1), DateTimeOffset.UtcNow.AddMinutes(1));

    protected static PurgeRequest NothingRecent => new(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddHours(-1));

    [Fact]
    public async Task AFinishedIngestionGoesWithItsResultsAndWorkThatWaitsRunsOrRetriesStays()
    {
        var store = await OpenAsync();
        var done = await EnqueueAsync(store, Priority.High, 1, 2, 3);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        var retrying = await EnqueueAsync(store, Priority.High, 4);
        var waiting = await EnqueueAsync(store, Priority.Low, 5, 6, 7, 8, 9, 10);
        var second = await ClaimEventuallyAsync(store, TinyWindow); // 4, 5, 6
        await store.CompleteWindowAsync(second, new WindowOutcome([Retry(second.Items[0], TimeSpan.FromHours(1)), Succeeded(second.Items[1]), Succeeded(second.Items[2])]), Token);
        var running = await EnqueueAsync(store, Priority.High, 20);
        var third = await ClaimEventuallyAsync(store, TinyWindow); // 20, 7, 8: left running
        Assert.Equal([20, 7, 8], Ids(third));

        Assert.Equal(0, (await store.PurgeAsync(NothingRecent, Token)).Ingestions);
        Assert.NotNull(await store.GetIngestionAsync(done, Token));

        var purged = await store.PurgeAsync(Everything, Token);

        Assert.Equal((1, 3L), (purged.Ingestions, purged.Results));
        Assert.False(purged.Busy);
        Assert.Null(await store.GetIngestionAsync(done, Token));
        Assert.Null(await store.GetResultsAsync(done, -1, 10, Token));
        Assert.Equal((1, 0), Progress(await store.GetIngestionAsync(retrying, Token)));  // handed out, waiting for its retry
        Assert.Equal((4, 2), Progress(await store.GetIngestionAsync(waiting, Token)));   // 7, 8 in flight, 9, 10 waiting
        Assert.Equal((1, 0), Progress(await store.GetIngestionAsync(running, Token)));
        Assert.Equal(new QueueDepth(1, 0, 2), await store.GetQueueDepthAsync(Token));

        // Once it finishes, `running` goes too; the others still have ids to do, here and in a new process.
        await CompleteAsync(store, third);
        Assert.Equal(1, (await store.PurgeAsync(Everything, Token)).Ingestions);
        var reopened = await OpenAsync();
        Assert.Null(await reopened.GetIngestionAsync(running, Token));
        Assert.Equal((1, 0), Progress(await reopened.GetIngestionAsync(retrying, Token)));
        Assert.Equal((4, 4), Progress(await reopened.GetIngestionAsync(waiting, Token)));
        Assert.Equal(new QueueDepth(1, 0, 2), await reopened.GetQueueDepthAsync(Token));
    }

    [Fact]
    public async Task AWindowGoesOnceNoKeptIngestionHasAPartInItAndTheNewestAreBehindIt()
    {
        var store = await OpenAsync();
        var first = await EnqueueAsync(store, Priority.High, 1, 2, 3);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));           // window 1: first's only
        Assert.Equal(1, (await store.PurgeAsync(Everything, Token)).Ingestions);             // first goes; its window is among the newest: kept
        var second = await EnqueueAsync(store, Priority.High, 4, 5, 6);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));           // window 2: second's only
        await EnqueueAsync(store, Priority.Low, [.. Enumerable.Range(100, 3 * Retention.KeptWindows + 1)]); // one id left: never finished here
        for (var window = 0; window < Retention.KeptWindows; window++)
        {
            WindowClaim claim;
            while ((claim = await ClaimAsync(store, TinyWindow)).Window is null)
            {
                await Task.Delay(1, Token); // the 1 ms window: a poll as tight as it
            }

            await CompleteAsync(store, claim.Window);                                         // windows 3 to 1 002: the newest 1 000
        }

        var targeted = await store.PurgeAsync(Everything, Token);  // second goes, and the window it took its items from
        var scanned = await store.PurgeAsync(Everything, Token);   // no ingestion left to delete: the whole log is looked at

        Assert.Equal((1, 1), (targeted.Ingestions, targeted.Windows));
        Assert.Equal((0, 1), (scanned.Ingestions, scanned.Windows));
        var log = await store.GetRecentWindowsAsync(2 * Retention.KeptWindows, Token);
        Assert.Equal(Retention.KeptWindows, log.Count);
        Assert.Null(await store.GetIngestionAsync(first, Token));
        Assert.Null(await store.GetIngestionAsync(second, Token));
        Assert.Equal(0, (await store.PurgeAsync(Everything, Token)).Rows);
    }

    [Fact]
    public async Task AfterASweepTheLimiterStillSpacesTheNextWindowFromTheNewestStart()
    {
        var store = await OpenAsync();
        var done = await EnqueueAsync(store, Priority.Medium, 1, 2, 3);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        await EnqueueAsync(store, Priority.Medium, 4);

        Assert.Equal(1, (await store.PurgeAsync(Everything, Token)).Ingestions);
        Assert.Null(await store.GetIngestionAsync(done, Token));

        foreach (var claimer in new[] { store, await OpenAsync() })
        {
            var refused = await ClaimAsync(claimer, LongWindow);
            Assert.Null(refused.Window);
            Assert.True(refused.RetryAfter > LongWindow - TimeSpan.FromMinutes(1), $"RetryAfter {refused.RetryAfter}");
        }
    }

    [Fact]
    public async Task ExpiredIdempotencyKeysGoAndLiveOnesStay()
    {
        var store = await OpenAsync();
        var expiring = await EnqueueWithKeyAsync(store, "soon", Priority.Low, [1], TimeSpan.FromSeconds(30));
        var living = await EnqueueWithKeyAsync(store, "later", Priority.Low, [2], TimeSpan.FromHours(2));

        var purged = await store.PurgeAsync(new PurgeRequest(DateTimeOffset.UtcNow.AddMinutes(1), DateTimeOffset.UtcNow.AddHours(-1)), Token);

        Assert.Equal(1, purged.Keys);
        Assert.Equal(0, purged.Ingestions); // both still wait
        var hash = IngestionSubmitter.RequestHash(IngestParseResult.Ok(Priority.Low, [2]));
        Assert.Equal(living.IngestionId, (await store.FindIdempotencyKeyAsync("later", hash, Token))?.IngestionId);
        Assert.NotNull(await store.GetIngestionAsync(expiring.IngestionId, Token));
    }

    [Fact]
    public async Task TheIdsAheadOfWaitingWorkStayTrueAfterASweepAndARestart()
    {
        var store = await OpenAsync();
        var done = await EnqueueAsync(store, Priority.Low, 1, 2, 3);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        var ahead = await EnqueueAsync(store, Priority.Low, 4, 5, 6, 7);
        var cancelled = await EnqueueAsync(store, Priority.Low, 8, 9);
        Assert.Equal(CancelOutcome.Cancelled, await store.CancelAsync(cancelled, Token));
        var behind = await EnqueueAsync(store, Priority.Low, 10);
        Assert.Equal(4, (await store.GetIngestionAsync(behind, Token))!.IdsAhead);

        var purged = await store.PurgeAsync(Everything, Token);

        Assert.Null(await store.GetIngestionAsync(done, Token));
        Assert.InRange(purged.Ingestions, 1, 2); // `cancelled` too where the backend can let it go (see the SQLite suite)
        foreach (var reader in new[] { store, await OpenAsync() })
        {
            Assert.Equal(4, (await reader.GetIngestionAsync(behind, Token))!.IdsAhead);
            Assert.Equal(0, (await reader.GetIngestionAsync(ahead, Token))!.IdsAhead);
            Assert.Equal(new QueueDepth(0, 0, 5), await reader.GetQueueDepthAsync(Token));
        }

        var next = await ClaimEventuallyAsync(await OpenAsync(), TinyWindow);
        Assert.Equal([4, 5, 6], Ids(next));
    }

    protected static (int Started, int Completed) Progress(IngestionSnapshot? snapshot) => (snapshot!.Started, snapshot.Completed);
}

/// <summary>Retention on the embedded SQLite store.</summary>
public sealed class SqliteRetentionContractTests() : RetentionContractTests(new SqliteBackend())
{
    /// <summary>
    /// The constant-time ids ahead count a cancelled tail behind waiting work of its priority as not ahead of
    /// it, so that ingestion stays until the work ahead of it has started, and goes at the next sweep after.
    /// </summary>
    [Fact]
    public async Task ACancelledIngestionBehindWaitingWorkGoesOnceThatWorkHasStarted()
    {
        var store = await OpenAsync();
        var ahead = await EnqueueAsync(store, Priority.Low, 1, 2, 3);
        var cancelled = await EnqueueAsync(store, Priority.Low, 4, 5);
        await store.CancelAsync(cancelled, Token);
        var behind = await EnqueueAsync(store, Priority.Low, 6);

        Assert.Equal(0, (await store.PurgeAsync(Everything, Token)).Ingestions);
        Assert.NotNull(await store.GetIngestionAsync(cancelled, Token));
        Assert.Equal(3, (await store.GetIngestionAsync(behind, Token))!.IdsAhead);

        var first = await ClaimEventuallyAsync(store, TinyWindow);
        Assert.Equal([1, 2, 3], Ids(first));
        Assert.Equal(1, (await store.PurgeAsync(Everything, Token)).Ingestions);
        Assert.Null(await store.GetIngestionAsync(cancelled, Token));
        await CompleteAsync(store, first);
        Assert.Equal(0, (await (await OpenAsync()).GetIngestionAsync(behind, Token))!.IdsAhead);
        Assert.NotNull(await store.GetIngestionAsync(ahead, Token));
    }

    [Fact]
    public async Task PurgedPagesGoBackToTheFileSystem()
    {
        var store = await OpenAsync();
        var big = await EnqueueAsync(store, Priority.High, 1, 2, 3);
        await store.CompleteWindowAsync(await ClaimEventuallyAsync(store, TinyWindow), new WindowOutcome([.. Enumerable.Range(0, 3).Select(i =>
            new FetchOutcome(FetchState.Succeeded, 200, new string('x', 200_000), false, null, 1, 0, null))]), Token);
        var before = await PragmaAsync(store, "page_count");

        await store.PurgeAsync(Everything, Token);

        Assert.Null(await store.GetIngestionAsync(big, Token));
        Assert.Equal(2, await PragmaAsync(store, "auto_vacuum")); // incremental
        Assert.Equal(0, await PragmaAsync(store, "freelist_count"));
        var after = await PragmaAsync(store, "page_count");
        Assert.True(after < before - 500, $"{before} pages before the sweep, {after} after: the 600 KB of answers were not given back");
    }

    [Fact]
    public async Task AFileMadeWithoutAutoVacuumIsSwitchedOnceAtStart()
    {
        var store = await OpenAsync();
        var kept = await EnqueueAsync(store, Priority.Low, 1, 2);
        await using (var raw = new Microsoft.Data.Sqlite.SqliteConnection(store.Sqlite!.ConnectionString))
        {
            await raw.OpenAsync(Token);
            await using var off = raw.CreateCommand();
            off.CommandText = "PRAGMA auto_vacuum = NONE; VACUUM;";
            await off.ExecuteNonQueryAsync(Token);
        }

        Assert.Equal(0, await PragmaAsync(store, "auto_vacuum"));
        var reopened = await OpenAsync();

        Assert.Equal(2, await PragmaAsync(reopened, "auto_vacuum"));
        var snapshot = await reopened.GetIngestionAsync(kept, Token);
        Assert.Equal([1, 2], snapshot!.Ids); // the rebuild keeps what was there
    }

    private static async Task<long> PragmaAsync(StoreUnderTest store, string pragma)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection(store.Sqlite!.ConnectionString);
        await connection.OpenAsync(Token);
        await using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA {pragma}";
        return (long)(await command.ExecuteScalarAsync(Token))!;
    }
}

/// <summary>Retention on PostgreSQL, where several instances share one database.</summary>
public sealed class PostgresRetentionContractTests() : RetentionContractTests(new PostgresBackend())
{
    [Fact]
    public async Task OnlyOneInstanceSweepsAtATime()
    {
        var store = await OpenAsync();
        var done = await EnqueueAsync(store, Priority.High, 1);
        await CompleteAsync(store, await ClaimEventuallyAsync(store, TinyWindow));
        var database = ((PostgresBackend)Backend).Database!;

        // Another instance's sweep holds the sweepers' lock.
        await using (var other = new NpgsqlConnection(database.ConnectionString))
        {
            await other.OpenAsync(Token);
            await using var take = new NpgsqlCommand("SELECT pg_advisory_lock($1)", other);
            take.Parameters.AddWithValue(IngestionService.Storage.Postgres.PostgresQueueStore.SweeperLock);
            await take.ExecuteNonQueryAsync(Token);

            var refused = await store.PurgeAsync(Everything, Token);
            Assert.True(refused.Busy);
            Assert.Equal(0, refused.Rows);
            Assert.NotNull(await store.GetIngestionAsync(done, Token));

            await using var release = new NpgsqlCommand("SELECT pg_advisory_unlock($1)", other);
            release.Parameters.AddWithValue(IngestionService.Storage.Postgres.PostgresQueueStore.SweeperLock);
            await release.ExecuteNonQueryAsync(Token);
        }

        var swept = await store.PurgeAsync(Everything, Token);
        Assert.False(swept.Busy);
        Assert.Equal(1, swept.Ingestions);
        Assert.Null(await store.GetIngestionAsync(done, Token));
    }
}
