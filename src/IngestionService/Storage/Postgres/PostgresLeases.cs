using System.Collections.Concurrent;
using IngestionService.Observability;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The leases of the windows this instance runs. A running window belongs to the instance that claimed
/// it (<c>owner</c>) until <c>lease_until</c>; the owner renews the lease every third of the lease while
/// it fetches, so two renewals in a row may fail (a slow or briefly unreachable database) before another
/// instance takes it over. An instance killed mid-window stops renewing, and the first claim after the
/// lease expires hands its ids back.
/// </summary>
internal sealed partial class PostgresLeases(NpgsqlDataSource dataSource, string owner, TimeSpan lease, ILogger logger)
{
    private readonly ConcurrentDictionary<long, CancellationTokenSource> _heartbeats = new();

    public void Start(long windowSeq)
    {
        var stop = new CancellationTokenSource();
        _heartbeats[windowSeq] = stop;
        _ = Task.Run(() => RenewAsync(windowSeq, stop.Token), CancellationToken.None);
    }

    public void Stop(long windowSeq)
    {
        // Not disposed: the renewal loop may still be looking at its token, and a source without a
        // timer holds nothing that needs it.
        if (_heartbeats.TryRemove(windowSeq, out var stop))
        {
            stop.Cancel();
        }
    }

    /// <summary>Stops renewing every lease, as a process that dies does; the windows stay running until their leases expire.</summary>
    public void StopAll()
    {
        foreach (var windowSeq in _heartbeats.Keys)
        {
            Stop(windowSeq);
        }
    }

    private async Task RenewAsync(long windowSeq, CancellationToken cancellationToken)
    {
        // Real time on purpose: the lease is measured by the database's clock, not by any test's fake one.
        using var timer = new PeriodicTimer(lease / 3);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    await using var renew = dataSource.CreateCommand("""
                        UPDATE windows SET lease_until = clock_timestamp() + $1
                        WHERE seq = $2 AND state = 0 AND owner = $3
                        """);
                    renew.Parameters.AddWithValue(lease);
                    renew.Parameters.AddWithValue(windowSeq);
                    renew.Parameters.AddWithValue(owner);
                    if (await renew.ExecuteNonQueryAsync(cancellationToken) == 0)
                    {
                        LogLeaseLost(logger, windowSeq);
                        return;
                    }
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

    [LoggerMessage(EventId = LogEvents.LeaseLost, Level = LogLevel.Warning, Message = "Window {WindowSeq} is no longer this instance's (its lease expired); its results will not be stored")]
    private static partial void LogLeaseLost(ILogger logger, long windowSeq);

    [LoggerMessage(EventId = LogEvents.LeaseRenewalFailed, Level = LogLevel.Warning, Message = "Renewing the lease of window {WindowSeq} failed; trying again at the next heartbeat")]
    private static partial void LogLeaseRenewalFailed(ILogger logger, Exception exception, long windowSeq);
}
