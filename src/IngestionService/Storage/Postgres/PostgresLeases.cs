using System.Collections.Concurrent;
using System.Diagnostics;
using IngestionService.Observability;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The leases of the windows this instance runs. A running window belongs to the instance that claimed
/// it (<c>owner</c>) until <c>lease_until</c>; the owner renews the lease every third of the lease while
/// it fetches, so two renewals in a row may fail (a slow or briefly unreachable database) before another
/// instance takes it over. An instance killed mid-window stops renewing, and the first claim after the
/// lease expires hands its ids back.
/// </summary>
/// <remarks>
/// An instance cut off from the database (a partition, a stalled connection, a failover) cannot know
/// whether another has taken its window back, so it stops on its own first: every window has a local
/// deadline, <see cref="SafeFor"/> after the statement that last set its <c>lease_until</c> was sent,
/// on this process's monotonic clock. The database set <c>lease_until</c> to its own clock at some moment
/// after that send, plus the lease, so the deadline always comes a fifth of the lease before the lease
/// can expire, as long as the database's clock does not run faster than this one by that much. At the
/// deadline the window's token (<see cref="Start"/>) fires: the dispatcher starts no call after it and
/// cancels the calls in flight, and another instance can take the window back only once the lease has
/// expired in the database, later.
/// </remarks>
internal sealed partial class PostgresLeases(NpgsqlDataSource dataSource, string owner, TimeSpan lease, ILogger logger)
{
    private readonly ConcurrentDictionary<long, Held> _held = new();

    /// <summary>How long after the statement that set a lease was sent this instance may still act on it: four fifths of the lease.</summary>
    public static TimeSpan SafeFor(TimeSpan lease) => lease - lease / 5;

    /// <summary>
    /// Why <paramref name="lease"/> cannot hold a window's calls, or null: a lease shorter than one call's
    /// <c>Upstream:Timeout</c> would have calls cut off at the deadline that a single late heartbeat delays.
    /// </summary>
    public static string? Problem(TimeSpan lease, TimeSpan upstreamTimeout) =>
        lease < upstreamTimeout
            ? $"Ingestion:Lease ({lease:c}) must not be shorter than Upstream:Timeout ({upstreamTimeout:c}) on PostgreSQL: an instance stops a window's calls {SafeFor(lease).TotalSeconds:0.###} s after its lease was last renewed, so a call must fit in one lease."
            : null;

    /// <summary>
    /// Renews the lease of a window claimed by a statement sent at <paramref name="sentAt"/> (a
    /// <see cref="Stopwatch"/> timestamp); the token fires once the lease may have expired (see the remarks).
    /// </summary>
    public CancellationToken Start(long windowSeq, long sentAt)
    {
        var held = new Held();
        Extend(held, sentAt);
        held.Deadline.Token.Register(() =>
        {
            if (_held.ContainsKey(windowSeq))
            {
                LogDeadline(logger, windowSeq, SafeFor(lease).TotalSeconds);
            }
        });
        _held[windowSeq] = held;
        _ = Task.Run(() => RenewAsync(windowSeq, held), CancellationToken.None);
        return held.Deadline.Token;
    }

    public void Stop(long windowSeq)
    {
        // Not disposed: the renewal loop and the dispatcher may still be looking at the tokens, and
        // sources whose timers are stopped hold nothing that needs it.
        if (_held.TryRemove(windowSeq, out var held))
        {
            held.Heartbeat.Cancel();
            held.Deadline.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Stops renewing every lease, as a process that dies does; the windows stay running until their leases expire.</summary>
    public void StopAll()
    {
        foreach (var windowSeq in _held.Keys)
        {
            Stop(windowSeq);
        }
    }

    /// <summary>Moves the window's deadline to <see cref="SafeFor"/> after <paramref name="sentAt"/>, or fires it if that has passed.</summary>
    private void Extend(Held held, long sentAt)
    {
        var left = SafeFor(lease) - Stopwatch.GetElapsedTime(sentAt);
        if (left <= TimeSpan.Zero)
        {
            held.Deadline.Cancel();
        }
        else
        {
            held.Deadline.CancelAfter(left);
        }
    }

    private async Task RenewAsync(long windowSeq, Held held)
    {
        // Real time on purpose: the lease is measured by the database's clock, not by any test's fake one.
        using var timer = new PeriodicTimer(lease / 3);
        try
        {
            while (await timer.WaitForNextTickAsync(held.Heartbeat.Token))
            {
                try
                {
                    var sentAt = Stopwatch.GetTimestamp();
                    await using var renew = dataSource.CreateCommand("""
                        UPDATE windows SET lease_until = clock_timestamp() + $1
                        WHERE seq = $2 AND state = 0 AND owner = $3
                        """);
                    renew.Parameters.AddWithValue(lease);
                    renew.Parameters.AddWithValue(windowSeq);
                    renew.Parameters.AddWithValue(owner);
                    if (await renew.ExecuteNonQueryAsync(held.Heartbeat.Token) == 0)
                    {
                        LogLeaseLost(logger, windowSeq);
                        _held.TryRemove(windowSeq, out _); // lost, not late: the deadline's line would say otherwise
                        held.Deadline.Cancel();
                        return;
                    }

                    Extend(held, sentAt);
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    LogLeaseRenewalFailed(logger, exception, windowSeq);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The window completed or was abandoned.
        }
    }

    private sealed class Held
    {
        public CancellationTokenSource Heartbeat { get; } = new();

        /// <summary>Fires once the lease may have expired: no call may start after, and calls in flight stop.</summary>
        public CancellationTokenSource Deadline { get; } = new();
    }

    [LoggerMessage(EventId = LogEvents.LeaseLost, Level = LogLevel.Warning, Message = "Window {WindowSeq} is no longer this instance's (its lease expired); its results will not be stored")]
    private static partial void LogLeaseLost(ILogger logger, long windowSeq);

    [LoggerMessage(EventId = LogEvents.LeaseDeadline, Level = LogLevel.Warning, Message = "Window {WindowSeq}: no renewal of its lease reached the database for {Seconds} s, so the lease may expire; its calls are cancelled and its ids handed back")]
    private static partial void LogDeadline(ILogger logger, long windowSeq, double seconds);

    [LoggerMessage(EventId = LogEvents.LeaseRenewalFailed, Level = LogLevel.Warning, Message = "Renewing the lease of window {WindowSeq} failed; trying again at the next heartbeat")]
    private static partial void LogLeaseRenewalFailed(ILogger logger, Exception exception, long windowSeq);
}

/// <summary>On PostgreSQL with the HTTP upstream, <c>Ingestion:Lease</c> must hold a call of the whole <c>Upstream:Timeout</c> (<see cref="PostgresLeases.Problem"/>).</summary>
internal sealed class PostgresLeaseValidator(IOptions<StorageOptions> storage, IOptions<Upstream.UpstreamOptions> upstream) : IValidateOptions<Ingest.IngestionOptions>
{
    public ValidateOptionsResult Validate(string? name, Ingest.IngestionOptions options)
    {
        if (!storage.Value.IsPostgres)
        {
            return ValidateOptionsResult.Success;
        }

        // The simulated upstream (demos, tests) has no timeout; its calls end after SimulatedDelay, however long.
        var calls = upstream.Value;
        var problem = calls.Mode == Upstream.UpstreamMode.Http ? PostgresLeases.Problem(options.Lease, calls.Timeout) : null;
        return problem is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problem);
    }
}
