using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What every backend does with an operator's limit: every claim reads it in its own transaction and
/// applies it, the first window after a change waits the longer of the two windows, and a new process
/// (or instance) on the same database applies the same.
/// </summary>
public abstract class LimitsContractTests(IStoreBackend backend) : StoreContract(backend)
{
    [Fact]
    public async Task AClaimAppliesTheStoredOverrideAndReportsItUntilItIsRemoved()
    {
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4, 5, 6, 7, 8);
        var change = await store.SetLimitAsync(new RateLimit(5, TinyWindow), Token);

        var other = await OpenAsync(); // another process or instance, which was told nothing
        var wide = await ClaimEventuallyAsync(other, TinyWindow);
        var claim = await ClaimAsync(other, TinyWindow);
        await CompleteAsync(other, wide);
        await store.SetLimitAsync(null, Token);
        var back = await ClaimEventuallyAsync(other, TinyWindow);
        var changes = await store.GetLimitChangesAsync(10, Token);

        Assert.Equal([1, 2, 3, 4, 5], Ids(wide));
        Assert.Equal(new RateLimit(5, TinyWindow), claim.Override);
        Assert.Equal([6, 7, 8], Ids(back));
        Assert.Equal([null, new RateLimit(5, TinyWindow)], changes.Select(c => c.Limit));
        Assert.Equal(change.ChangedAt, changes[1].ChangedAt);
        Assert.True(changes[0].ChangedAt >= changes[1].ChangedAt);
    }

    [Fact]
    public async Task TheFirstWindowAfterAShorterLimitStillWaitsTheWindowOfTheLastStart()
    {
        var store = await OpenAsync();
        await EnqueueAsync(store, Priority.Medium, 1, 2, 3, 4);
        // Far longer than any stall of a loaded machine between the claims below: were the refusals to come
        // after it, the window would rightly be admitted and the test would say nothing about the rule.
        var lastWindow = TimeSpan.FromMinutes(2);
        var first = await ClaimEventuallyAsync(store, lastWindow);
        await CompleteAsync(store, first);
        await store.SetLimitAsync(new RateLimit(3, TinyWindow), Token);

        // Configured with the short window too, so only the stored window of the last start can explain a long wait.
        var refused = await ClaimAsync(store, TinyWindow);
        var other = await ClaimAsync(await OpenAsync(), TinyWindow); // another process or instance, which was told nothing
        var elapsed = DateTimeOffset.UtcNow - first.StartedAt;

        Assert.All([refused, other], claim =>
        {
            Assert.Null(claim.Window);
            Assert.Equal(new RateLimit(3, TinyWindow), claim.Override);
            // The wait left of the 2-minute window the last start began under, not the 1 ms one in force now
            // (up to 1 ms longer: starts are stored rounded up to the millisecond).
            Assert.InRange(claim.RetryAfter!.Value, lastWindow - elapsed - TimeSpan.FromSeconds(1), lastWindow + TimeSpan.FromMilliseconds(1));
        });
    }
}

/// <summary>Live limits on the embedded SQLite store.</summary>
public sealed class SqliteLimitsContractTests() : LimitsContractTests(new SqliteBackend());

/// <summary>Live limits on PostgreSQL.</summary>
public sealed class PostgresLimitsContractTests() : LimitsContractTests(new PostgresBackend());
