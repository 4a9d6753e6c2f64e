using Microsoft.Data.Sqlite;
using Npgsql;

namespace IngestionService.Storage;

/// <summary>
/// Whether the store takes writes. A store that refuses them for want of space or permission (SQLite's
/// <c>SQLITE_FULL</c>: the disk, or the file's size limit; PostgreSQL in a read-only transaction or out of
/// disk) is not a bug of the request: submissions answer 503 with a Retry-After, readiness answers 503 with
/// the reason, and the dispatcher keeps its window's answers or hands its ids back until writes work
/// again. Nothing half-written stays: each write is one transaction. Once a refusal is seen, readiness
/// asks the store with a probe write (<see cref="IQueueStore.ProbeWriteAsync"/>), so the service comes
/// back by itself when space is free.
/// </summary>
public sealed partial class StoreWrites(IQueueStore store, TimeProvider clock, ILogger<StoreWrites> logger)
{
    /// <summary>What a refused submission is told to wait, and the least time between two probes.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan ProbeEvery = TimeSpan.FromSeconds(1);

    private Refusal? _refusal;
    private long _lastProbe = long.MinValue;

    /// <summary>Why and since when the store refuses writes; null while it takes them.</summary>
    public Refusal? Current => Volatile.Read(ref _refusal);

    /// <summary>The refusal <paramref name="exception"/> stands for, in words for an operator; null for any other failure.</summary>
    public static string? Describe(Exception? exception) => FirstInChain(exception, static current => current switch
    {
        SqliteException { SqliteErrorCode: 13 } => "the SQLite database is full (SQLITE_FULL): its disk has no space left, or the file reached its size limit",
        PostgresException { SqlState: PostgresErrorCodes.ReadOnlySqlTransaction } postgres => $"PostgreSQL refuses writes: {postgres.MessageText} (the server is read-only or a standby)",
        PostgresException { SqlState: PostgresErrorCodes.DiskFull } postgres => $"PostgreSQL is out of disk space: {postgres.MessageText}",
        _ => null,
    });

    /// <summary>
    /// Why the store could not be reached for one request, in words for the client, or null: a PostgreSQL
    /// session cut by a restart, a failover or the network (Npgsql's transient errors, and the server's
    /// shutdown codes 57P01-57P03). Unlike a refusal this says nothing of the next request: the pool opens
    /// new sessions, so readiness is not changed. The outcome of a commit cut off midway is unknown.
    /// </summary>
    public static string? DescribeUnavailable(Exception? exception) => FirstInChain(exception, static current => current switch
    {
        PostgresException { SqlState: PostgresErrorCodes.AdminShutdown or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow } postgres =>
            $"PostgreSQL is restarting or shutting down ({postgres.SqlState}: {postgres.MessageText})",
        NpgsqlException { IsTransient: true } npgsql => $"the connection to PostgreSQL failed ({npgsql.Message})",
        _ => null,
    });

    /// <summary>What <paramref name="describe"/> says of the first exception in the chain it knows, outermost first.</summary>
    private static string? FirstInChain(Exception? exception, Func<Exception, string?> describe)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (describe(current) is { } description)
            {
                return description;
            }
        }

        return null;
    }

    /// <summary>Records <paramref name="exception"/> when it is a refusal (<see cref="Describe"/>); false when it is some other failure.</summary>
    public bool Refused(Exception exception)
    {
        if (Describe(exception) is not { } reason)
        {
            return false;
        }

        var refusal = new Refusal(reason, clock.GetUtcNow());
        if (Interlocked.CompareExchange(ref _refusal, refusal, null) is null)
        {
            LogRefusing(logger, exception, reason);
        }

        return true;
    }

    /// <summary>The refusal still in force: while one is recorded, a probe write (at most once a second) tells whether it has ended.</summary>
    public async Task<Refusal?> CheckAsync(CancellationToken cancellationToken)
    {
        if (Current is not { } refusal)
        {
            return null;
        }

        var now = clock.GetTimestamp();
        var last = Interlocked.Read(ref _lastProbe);
        if ((last != long.MinValue && clock.GetElapsedTime(last, now) < ProbeEvery) || Interlocked.CompareExchange(ref _lastProbe, now, last) != last)
        {
            return refusal;
        }

        try
        {
            await store.ProbeWriteAsync(cancellationToken);
        }
        catch (Exception exception) when (Describe(exception) is not null)
        {
            return refusal;
        }

        if (Interlocked.CompareExchange(ref _refusal, null, refusal) == refusal)
        {
            LogWritesAgain(logger, (clock.GetUtcNow() - refusal.Since).TotalSeconds);
        }

        return Current;
    }

    public sealed record Refusal(string Reason, DateTimeOffset Since);

    [LoggerMessage(EventId = Observability.LogEvents.StoreRefusingWrites, Level = LogLevel.Error, Message = "The store refuses writes: {Reason}. Submissions answer 503 until it takes them again")]
    private static partial void LogRefusing(ILogger logger, Exception exception, string reason);

    [LoggerMessage(EventId = Observability.LogEvents.StoreWritesAgain, Level = LogLevel.Warning, Message = "The store takes writes again, after {Seconds:0.0} s of refusing them")]
    private static partial void LogWritesAgain(ILogger logger, double seconds);
}
