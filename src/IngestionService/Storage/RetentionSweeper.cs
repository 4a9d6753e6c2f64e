using IngestionService.Ingest;
using IngestionService.Observability;
using IngestionService.Scheduling;
using Microsoft.Extensions.Options;

namespace IngestionService.Storage;

/// <summary>
/// Deletes finished work older than <c>Ingestion:Retention</c> (<see cref="Retention"/>), every
/// <see cref="Retention.SweepInterval"/>, in small batches with a pause fifty times as long as the batch
/// after each (<see cref="Retention.PauseAfter"/>), so submissions and
/// windows never wait long behind it. On a shared store one instance sweeps at a time; the others' batches
/// come back <see cref="PurgeResult.Busy"/> and they try again at their next interval.
/// </summary>
public sealed partial class RetentionSweeper(IQueueStore store, StoreWrites writes, TimeProvider clock, IOptions<IngestionOptions> options, ILogger<RetentionSweeper> logger, IngestionMetrics? metrics = null) : BackgroundService
{
    private readonly TimeSpan _retention = options.Value.Retention;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Retention.SweepInterval(_retention), clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await SweepAsync(stoppingToken);
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    writes.Refused(exception);
                    LogSweepFailed(logger, exception);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: the next start sweeps what is left.
        }
    }

    /// <summary>One sweep: batches until nothing more is due (or another instance is sweeping); what it deleted in all.</summary>
    public async Task<PurgeResult> SweepAsync(CancellationToken cancellationToken)
    {
        var total = PurgeResult.None;
        while (true)
        {
            var started = clock.GetTimestamp();
            var batch = await store.PurgeAsync(Retention.Request(clock.GetUtcNow(), _retention), cancellationToken);
            var took = clock.GetElapsedTime(started);
            metrics?.Purged(batch);
            total += batch;
            if (!batch.More || batch.Busy)
            {
                break;
            }

            await Task.Delay(Retention.PauseAfter(took), clock, cancellationToken);
        }

        if (total.Rows > 0)
        {
            LogSwept(logger, total.Ingestions, total.Results, total.Windows, total.Keys, _retention.TotalSeconds);
        }

        return total;
    }

    [LoggerMessage(EventId = LogEvents.Swept, Level = LogLevel.Information, Message = "Retention: deleted {Ingestions} ingestions with {Results} results, {Windows} windows and {Keys} expired idempotency keys, finished more than {RetentionSeconds} s ago")]
    private static partial void LogSwept(ILogger logger, int ingestions, long results, int windows, int keys, double retentionSeconds);

    [LoggerMessage(EventId = LogEvents.SweepFailed, Level = LogLevel.Error, Message = "The retention sweep failed; it runs again at its next interval")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
