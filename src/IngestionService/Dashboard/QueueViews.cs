using IngestionService.Control;
using IngestionService.Dispatch;
using IngestionService.Ingest;
using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Dashboard;

/// <summary>The queue as <c>GET /queue</c> answers it, and as the control calls answer after they act.</summary>
public sealed class QueueViews(IQueueReader store, AdmissionBound admission, TimeProvider clock, LimitInForce limits, IOptions<AdminOptions> admin)
{
    public async Task<QueueView> ReadAsync(CancellationToken cancellationToken)
    {
        var depth = await store.GetQueueDepthAsync(cancellationToken);
        var pause = await store.GetQueuePauseAsync(cancellationToken);
        var now = clock.GetUtcNow();
        var (batchSize, window) = limits.Current;
        var estimate = new WaitEstimate(admission.NotBeforeFrom(now), window, batchSize);

        // HIGH drains first, so MEDIUM's last id waits for every HIGH id too, and LOW's for both. While the
        // queue is paused nothing drains, and no clock says when it resumes: no drain times.
        var priorities = new List<PriorityQueueView>(3);
        foreach (var priority in (ReadOnlySpan<Priority>)[Priority.High, Priority.Medium, Priority.Low])
        {
            var waiting = depth.Of(priority);
            var ahead = depth.UpTo(priority);
            DateTime? drainedAt = waiting == 0 || pause is not null ? null : estimate.StartOf(ahead - 1);
            double? drainSeconds = waiting == 0 ? 0
                : drainedAt is { } at ? Math.Max(0, (at - now.UtcDateTime).TotalSeconds)
                : null;
            priorities.Add(new PriorityQueueView(priority, waiting, ahead, drainSeconds, drainedAt));
        }

        var pausedUntil = StatusReport.PauseShown(await store.GetPausedUntilAsync(cancellationToken), now);
        return new QueueView(
            now.UtcDateTime, estimate.NextAdmission.UtcDateTime, window.TotalSeconds, batchSize, depth.Total, priorities,
            pause is not null, pause?.PausedAt.UtcDateTime, pause?.Reason, admin.Value.ApiKey is not null, pausedUntil?.UtcDateTime);
    }
}
