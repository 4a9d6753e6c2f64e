using Microsoft.Extensions.DependencyInjection;
using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Storage.Postgres;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>The read-side contract on PostgreSQL.</summary>
public sealed class PostgresQueueReaderContractTests() : QueueReaderContractTests(new PostgresBackend());

/// <summary>
/// The write-path contract on PostgreSQL (a database of its own on a real server), and what only a store
/// shared by several instances has to do: serialise their claims, take back a dead instance's window.
/// Each store here plays one instance.
/// </summary>
public sealed class PostgresQueueStoreContractTests() : QueueStoreContractTests(new PostgresBackend())
{
    private static readonly TimeSpan ShortLease = TimeSpan.FromSeconds(1);

    private PostgresBackend Postgres => (PostgresBackend)Backend;

    [Fact]
    public async Task InstancesStartingTogetherApplyTheSchemaOnce()
    {
        var stores = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Postgres.OpenAsync(ShortLease, initialize: false)));

        await Task.WhenAll(stores.Select(store => store.InitializeAsync(Token)));

        Assert.Equal(PostgresSchema.Scripts().LongCount(), await Postgres.Database!.ScalarAsync<long>("SELECT count(*) FROM schema_migrations"));
        foreach (var store in stores)
        {
            await store.DisposeAsync();
        }
    }

    [Fact]
    public async Task WorkAndFinishedWindowsCommittedByAnotherInstanceWakeThisInstancesDispatcher()
    {
        var other = await Postgres.OpenAsync(ShortLease);
        await using var dataSource = PostgresQueueStore.CreateDataSource(Postgres.Database!.ConnectionString);
        var signal = new Dispatch.DispatchSignal();
        var services = new ServiceCollection().AddSingleton(dataSource).BuildServiceProvider();
        var postgres = Microsoft.Extensions.Options.Options.Create(new StorageOptions { Provider = StorageOptions.Postgres });
        using var fanout = new PostgresEventFanout(services, postgres, new Events.EventHub(), Microsoft.Extensions.Logging.Abstractions.NullLogger<PostgresEventFanout>.Instance);
        using var wakeUps = new PostgresWakeUps(services, postgres, signal, fanout, Microsoft.Extensions.Logging.Abstractions.NullLogger<PostgresWakeUps>.Instance);
        await wakeUps.StartAsync(Token);

        // Its first wake-up says it listens (and looks for what was committed before).
        var deadline = TimeSpan.FromSeconds(10);
        await signal.WaitAsync(Token).WaitAsync(deadline, Token);
        var waiting = signal.WaitAsync(Token);
        Assert.False(waiting.IsCompleted);

        await EnqueueAsync(other, Priority.Low, 1, 2, 3);
        await waiting.WaitAsync(deadline, Token);

        var window = (await other.ClaimWindowAsync(3, TimeSpan.FromMilliseconds(10), Token)).Window!;
        waiting = signal.WaitAsync(Token);
        await other.CompleteWindowAsync(window, new WindowOutcome([.. window.Items.Select(Succeeded)]), Token);
        await waiting.WaitAsync(deadline, Token);

        await wakeUps.StopAsync(Token);
        await other.DisposeAsync();
    }

    [Fact]
    public async Task AStreamEventOneInstanceMakesIsPublishedOnceOnEveryOtherInstanceAndNotBackOnItsOwn()
    {
        _ = await OpenAsync(); // the schema
        await using var dataSource = PostgresQueueStore.CreateDataSource(Postgres.Database!.ConnectionString);
        var services = new ServiceCollection().AddSingleton(dataSource).BuildServiceProvider();
        var postgres = Microsoft.Extensions.Options.Options.Create(new StorageOptions { Provider = StorageOptions.Postgres });
        var instances = Enumerable.Range(0, 3).Select(_ =>
        {
            var hub = new Events.EventHub();
            var fanout = new PostgresEventFanout(services, postgres, hub, Microsoft.Extensions.Logging.Abstractions.NullLogger<PostgresEventFanout>.Instance);
            var wakeUps = new PostgresWakeUps(services, postgres, new Dispatch.DispatchSignal(), fanout, Microsoft.Extensions.Logging.Abstractions.NullLogger<PostgresWakeUps>.Instance);
            return (Hub: hub, Fanout: fanout, WakeUps: wakeUps);
        }).ToList();
        foreach (var instance in instances)
        {
            await instance.Fanout.StartAsync(Token);
            await instance.WakeUps.StartAsync(Token);
        }

        // Each listens once its session has said LISTEN: an event sent until all do is sent again.
        var deadline = TimeSpan.FromSeconds(15);
        await Eventually.HoldsAsync(() =>
        {
            if (instances.Skip(1).All(i => i.Hub.Last > 0))
            {
                return true;
            }

            instances[0].Hub.Publish("probe", "{}", share: true);
            return false;
        }, deadline, "every instance to listen");
        var before = instances.Select(i => i.Hub.Last).ToList();

        instances[0].Hub.Publish(Events.ServiceEvents.WindowStarted, """{"seq":42,"ids":3}""", share: true);
        instances[0].Hub.Publish(Events.ServiceEvents.QueueDepthChanged, """{"total":7}"""); // not shared: each instance samples its own

        await Eventually.HoldsAsync(() => instances.Skip(1).All(i => i.Hub.After(before[instances.IndexOf(i)])!.Any(e => e.Type == Events.ServiceEvents.WindowStarted)), deadline, "the other instances to hear the window");
        foreach (var (instance, i) in instances.Select((instance, i) => (instance, i)).Skip(1))
        {
            var heard = Assert.Single(instance.Hub.After(before[i])!, e => e.Type != "probe");
            Assert.Equal((Events.ServiceEvents.WindowStarted, """{"seq":42,"ids":3}"""), (heard.Type, heard.Data));
        }

        Assert.Equal(before[0] + 2, instances[0].Hub.Last); // its own two, and none of them back
        foreach (var instance in instances)
        {
            await instance.WakeUps.StopAsync(Token);
            await instance.Fanout.StopAsync(Token);
            instance.WakeUps.Dispose();
            instance.Fanout.Dispose();
        }
    }

    [Fact]
    public async Task AnUpgradeFromSchema7CountsTheIdsAheadOfWorkAlreadyWaitingAndOfWorkEnqueuedAfter()
    {
        // A database as schema 7 left it: a HIGH ingestion with one id started and handed back, and LOW
        // ones: waiting, cancelled after 2 of 6 ids, waiting behind it.
        var store = await Postgres.OpenAsync(ShortLease, initialize: false);
        await using (var connection = new Npgsql.NpgsqlConnection(Postgres.Database!.ConnectionString))
        {
            await connection.OpenAsync(Token);
            var upToSeven = PostgresSchema.Scripts().Where(script => script.Version <= 7).ToList();
            await using (var schema = new Npgsql.NpgsqlCommand(string.Join('\n', upToSeven.Select(script => script.Sql)) + """

                CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp());
                INSERT INTO schema_migrations (version, name) SELECT v, 'script ' || v FROM generate_series(1, 7) AS v;
                """, connection))
            {
                await schema.ExecuteNonQueryAsync(Token);
            }

            async Task InsertAsync(Priority priority, int secondsAgo, int total, int started, int? cancelledFrom = null)
            {
                await using var insert = new Npgsql.NpgsqlCommand("""
                    INSERT INTO ingestions (id, priority, created_at, batch_size, total, started, ids, cancelled_from, cancelled_at, cancel_reason)
                    VALUES ($1, $2, clock_timestamp() - make_interval(secs => $3), 3, $4, $5, $6, $7, CASE WHEN $7 IS NOT NULL THEN clock_timestamp() END, CASE WHEN $7 IS NOT NULL THEN 0 END)
                    """, connection);
                insert.Parameters.AddWithValue(Guid.CreateVersion7());
                insert.Parameters.AddWithValue((short)priority);
                insert.Parameters.AddWithValue((double)secondsAgo);
                insert.Parameters.AddWithValue(total);
                insert.Parameters.AddWithValue(started);
                insert.Parameters.AddWithValue(IdBlob.Pack([.. Enumerable.Range(1, total)]));
                insert.Parameters.Add(new Npgsql.NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer, Value = (object?)cancelledFrom ?? DBNull.Value });
                await insert.ExecuteNonQueryAsync(Token);
            }

            await InsertAsync(Priority.High, 50, total: 4, started: 1);
            await InsertAsync(Priority.Low, 40, total: 5, started: 0);
            await InsertAsync(Priority.Low, 30, total: 6, started: 6, cancelledFrom: 2);
            await InsertAsync(Priority.Low, 20, total: 3, started: 0);
            await using var handBack = new Npgsql.NpgsqlCommand("INSERT INTO requeued (ingestion_seq, position) SELECT seq, 0 FROM ingestions WHERE priority = 0", connection);
            await handBack.ExecuteNonQueryAsync(Token);
        }

        await store.InitializeAsync(Token);

        var ids = (await store.GetRecentIngestionsAsync(10, IngestionFilter.None, Token)).OrderBy(i => i.CreatedAt).Select(i => i.Id).ToList();
        Assert.Equal(new QueueDepth(3 + 1, 0, 5 + 3), await store.GetQueueDepthAsync(Token));
        Assert.Equal(1, (await store.GetIngestionAsync(ids[0], Token))!.IdsAhead);          // its own handed-back id
        Assert.Equal(4, (await store.GetIngestionAsync(ids[1], Token))!.IdsAhead);          // HIGH's 3 + 1
        Assert.Equal(4 + 5, (await store.GetIngestionAsync(ids[3], Token))!.IdsAhead);      // and the first LOW's 5, none of the cancelled
        var after = await EnqueueAsync(store, Priority.Low, 1, 2);
        Assert.Equal(4 + 5 + 3, (await store.GetIngestionAsync(after, Token))!.IdsAhead);

        // A claim of 3 takes the handed-back id and 2 unstarted HIGH ones: the totals move with it.
        var claim = await store.ClaimWindowAsync(3, TimeSpan.FromMilliseconds(10), Token);
        Assert.NotNull(claim.Window);
        Assert.Equal(4 + 5 + 3 - 3, (await store.GetIngestionAsync(after, Token))!.IdsAhead);
        Assert.Equal(new QueueDepth(1, 0, 5 + 3 + 2), await store.GetQueueDepthAsync(Token));
        await store.DisposeAsync();
    }

    [Fact]
    public async Task AWindowWhoseInstanceDiedIsTakenBackOnceItsLeaseExpiresAndItsStartStillCounts()
    {
        await using var dead = await Postgres.OpenAsync(ShortLease);
        await using var survivor = await Postgres.OpenAsync(ShortLease);
        var ingestion = await EnqueueAsync(dead, Priority.Medium, 1, 2, 3, 4);
        var lost = await ClaimEventuallyAsync(dead, TinyWindow);
        ((PostgresQueueStore)dead.Queue).StopRenewingLeases();

        // On a slow machine the lease may already have run out at the first look, and the survivor then
        // takes the window back at once; either way it must not before the lease has run out.
        var firstLook = await ClaimAsync(survivor, TinyWindow);
        var retried = firstLook.Window ?? await ClaimEventuallyAsync(survivor, TinyWindow);

        Assert.Equal([1, 2, 3], Ids(retried));
        Assert.True(retried.StartedAt - lost.StartedAt >= ShortLease, $"taken back {retried.StartedAt - lost.StartedAt} after it started, before its lease of {ShortLease} ran out");
        var log = await survivor.GetRecentWindowsAsync(10, Token);
        Assert.Equal([WindowState.Running, WindowState.Abandoned], log.Select(w => w.State));
        await Assert.ThrowsAsync<InvalidOperationException>(() => CompleteAsync(dead, lost));
        await CompleteAsync(survivor, retried);
        Assert.Equal(3, (await survivor.GetIngestionAsync(ingestion, Token))!.Completed);
    }

    [Fact]
    public async Task AWindowWhoseHeartbeatsGetThroughIsNeverLost()
    {
        // Three seconds: a renewal may take up to 1.4 s (the deadline at four fifths of the lease, less the
        // third of it between renewals) on a machine busy with the rest of the suite, and still hold it.
        var lease = TimeSpan.FromSeconds(3);
        await using var store = await Postgres.OpenAsync(lease);
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3);
        var window = await ClaimEventuallyAsync(store, TinyWindow);

        await Task.Delay(2 * lease, Token); // two leases' time: renewed every third of one, it must stay held

        Assert.False(window.Lost.IsCancellationRequested);
        await CompleteAsync(store, window);
    }

    [Fact]
    public async Task AnInstanceCutOffFromTheDatabaseGivesUpItsWindowBeforeTheLeaseCanExpireAndAnotherTakesItOnlyAfter()
    {
        // Three seconds: the give-up comes 0.6 s before the lease can expire, and a claim tried at once after it
        // comes in between unless the machine stalls (then it may rightly take the window, and is judged by its start).
        var lease = TimeSpan.FromSeconds(3);
        var server = new Npgsql.NpgsqlConnectionStringBuilder(TempPostgresDatabase.RequireServer());
        await using var proxy = BlackHoleProxy.Start(server.Host!, server.Port);
        await using var cutOff = await Postgres.OpenAsync(lease, proxy: proxy);
        await using var other = await Postgres.OpenAsync(lease);
        var ingestion = await EnqueueAsync(other, Priority.Medium, 1, 2, 3);
        var claimedAt = System.Diagnostics.Stopwatch.GetTimestamp();
        var window = await ClaimEventuallyAsync(cutOff, TinyWindow);

        proxy.Cut(); // the heartbeats stop getting through; the connections stay open
        var lost = new TaskCompletionSource<DateTimeOffset>();
        using var registration = window.Lost.Register(() => lost.SetResult(DateTimeOffset.UtcNow));
        var lostAt = await lost.Task.WaitAsync(TimeSpan.FromSeconds(10), Token);
        var lostAfter = System.Diagnostics.Stopwatch.GetElapsedTime(claimedAt);
        var leaseUntil = new DateTimeOffset(await Postgres.Database!.ScalarAsync<DateTime>($"SELECT lease_until FROM windows WHERE seq = {window.Seq}"), TimeSpan.Zero);
        var takenTooSoon = await ClaimAsync(other, TinyWindow);
        // A loaded machine may be slow to ask, and rightly be given the window once the lease has expired.
        var retried = takenTooSoon.Window ?? await ClaimEventuallyAsync(other, TinyWindow);

        // Times on the one clock of this machine, which the database's is too: the instance gave the window up
        // before its lease could expire in the database, and the other instance took it only after.
        Assert.True(lostAt < leaseUntil, $"the window was given up at {lostAt:O} ({lostAfter} after the claim began), its lease held until {leaseUntil:O}");
        Assert.True(retried.StartedAt >= leaseUntil, $"taken back at {retried.StartedAt:O}, while its lease held until {leaseUntil:O}");
        Assert.Equal([1, 2, 3], Ids(retried));

        proxy.Heal();
        await Assert.ThrowsAsync<InvalidOperationException>(() => CompleteAsync(cutOff, window)); // its answers are not stored
        await CompleteAsync(other, retried);
        Assert.Equal(3, (await other.GetIngestionAsync(ingestion, Token))!.Completed);
    }

    [Fact]
    public async Task AnInstanceThatStopsGracefullyHandsItsWindowBackAtOnce()
    {
        var stopping = await Postgres.OpenAsync(TimeSpan.FromMinutes(10));
        await using var other = await Postgres.OpenAsync(TimeSpan.FromMinutes(10));
        await EnqueueAsync(stopping, Priority.Medium, 1, 2, 3, 4);
        await ClaimEventuallyAsync(stopping, TinyWindow);

        await stopping.DisposeAsync();
        var next = await ClaimEventuallyAsync(other, TinyWindow);

        Assert.Equal([1, 2, 3], Ids(next));
        Assert.Equal(
            [WindowState.Running, WindowState.Abandoned],
            (await other.GetRecentWindowsAsync(10, Token)).Select(w => w.State));
    }

    [Fact]
    public async Task ALiveInstanceKeepsItsWindowPastTheLeaseByRenewingIt()
    {
        // Two seconds, so that a heartbeat delayed by a loaded machine is not mistaken for a death.
        var lease = TimeSpan.FromSeconds(2);
        await using var owner = await Postgres.OpenAsync(lease);
        await using var other = await Postgres.OpenAsync(lease);
        await EnqueueAsync(owner, Priority.Medium, 1, 2, 3, 4);
        var window = await ClaimEventuallyAsync(owner, TinyWindow);

        // Two leases long, every claim of the other instance is refused: the heartbeat keeps the window.
        var deadline = DateTime.UtcNow + (2 * lease);
        while (DateTime.UtcNow < deadline)
        {
            Assert.Null((await ClaimAsync(other, TinyWindow)).Window);
            await Task.Delay(TimeSpan.FromMilliseconds(100), Token);
        }

        await CompleteAsync(owner, window);
        var next = await ClaimEventuallyAsync(other, TinyWindow);
        Assert.Equal([4], Ids(next));
    }

    [Fact]
    public async Task ManyInstancesClaimingAtOnceAdmitOneWindowAtATimeInOrderAndSpaced()
    {
        var window = TimeSpan.FromMilliseconds(50);

        // No instance dies here, so the lease only has to outlast a claim and a completion on a loaded machine.
        var instances = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Postgres.OpenAsync(TimeSpan.FromSeconds(10))));
        var ids = Enumerable.Range(1, 30).ToArray();
        await EnqueueAsync(instances[0], Priority.Medium, ids);

        // Every instance claims again a millisecond after each refusal and completes at once; the store alone
        // keeps them apart. (Not with no pause at all: four loops on the limiter row starve the tests beside it.)
        await Task.WhenAll(instances.Select(async instance =>
        {
            while (true)
            {
                var claim = await ClaimAsync(instance, window);
                if (claim.Window is { } claimed)
                {
                    await CompleteAsync(instance, claimed);
                }
                else if (claim.RetryAfter is null)
                {
                    return;
                }
                else
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(1), Token);
                }
            }
        }));

        var log = (await instances[0].GetRecentWindowsAsync(100, Token)).Reverse().ToList();
        Assert.Equal(ids.AsEnumerable(), log.SelectMany(w => w.Items.SelectMany(i => i.Ids)));
        Assert.All(log.Zip(log.Skip(1)), pair =>
        {
            Assert.True(pair.Second.StartedAt - pair.First.StartedAt >= window, $"windows {pair.First.Seq} and {pair.Second.Seq} started {pair.Second.StartedAt - pair.First.StartedAt} apart");
            Assert.True(pair.Second.StartedAt >= pair.First.FinishedAt, $"window {pair.Second.Seq} started before window {pair.First.Seq} finished");
        });
        foreach (var instance in instances)
        {
            await instance.DisposeAsync();
        }
    }
}
