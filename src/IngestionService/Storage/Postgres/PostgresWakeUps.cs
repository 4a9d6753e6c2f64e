using IngestionService.Dispatch;
using IngestionService.Observability;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// Wakes this instance's idle dispatcher when another instance commits what could let a window start:
/// new work, a window finished or handed back, the queue resumed, a new limit. Every such transaction
/// runs <see cref="NotifySql"/>, which PostgreSQL delivers to every listening session when (and only if)
/// it commits; one session per instance listens (as River and Oban do). Only a hint, like the
/// <see cref="DispatchSignal"/> it pulls: the poll every <c>Ingestion:PollInterval</c> stays the fallback,
/// so a lost notification (a dropped listening session, reconnecting here) costs at most one poll.
/// </summary>
/// <remarks>
/// The same session hears the other instances' stream events (<see cref="PostgresEventFanout"/>), so every
/// instance's <c>GET /events</c> shows every window.
/// </remarks>
internal sealed partial class PostgresWakeUps(IServiceProvider services, IOptions<StorageOptions> storage, DispatchSignal signal, PostgresEventFanout fanout, ILogger<PostgresWakeUps> logger) : BackgroundService
{
    public const string Channel = "ingestion_work";

    /// <summary>The SQL expression that tells the listeners, once its transaction commits; in the select list of a statement that already runs.</summary>
    public const string Notify = $"pg_notify('{Channel}', '')";

    /// <summary><see cref="Notify"/> as a statement of its own.</summary>
    public const string NotifySql = $"SELECT {Notify}";

    private static readonly TimeSpan Reconnect = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!storage.Value.IsPostgres)
        {
            return;
        }

        var dataSource = services.GetRequiredService<NpgsqlDataSource>();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                connection.Notification += (_, heard) =>
                {
                    if (heard.Channel == PostgresEventFanout.Channel)
                    {
                        fanout.Heard(heard.Payload);
                    }
                    else
                    {
                        signal.Notify();
                    }
                };
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}; LISTEN {PostgresEventFanout.Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                // Whatever was committed while nobody listened is found by the look this wake-up causes.
                signal.Notify();
                while (true)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or System.IO.IOException or TimeoutException)
            {
                LogListenFailed(logger, exception, Reconnect);
                await Task.Delay(Reconnect, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    [LoggerMessage(EventId = LogEvents.WakeUpsLost, Level = LogLevel.Warning, Message = "Lost the session that hears other instances' work; polling until it is back, trying again in {Delay}")]
    private static partial void LogListenFailed(ILogger logger, Exception exception, TimeSpan delay);
}
