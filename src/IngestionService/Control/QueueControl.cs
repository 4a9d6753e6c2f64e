using IngestionService.Dispatch;
using IngestionService.Storage;

namespace IngestionService.Control;

/// <summary>
/// An operator's actions on the queue, for the HTTP API and anything else that acts: each is one store
/// transaction, and what should wake this process's dispatcher does (other instances see it at their
/// next poll).
/// </summary>
public sealed class QueueControl(IQueueStore store, DispatchSignal signal, LimitInForce limits)
{
    /// <summary>No window is admitted until <see cref="ResumeAsync"/>; the window in flight finishes.</summary>
    public Task<QueuePause> PauseAsync(string? reason, CancellationToken cancellationToken) => store.PauseQueueAsync(reason, cancellationToken);

    /// <summary>Ends the pause and wakes the dispatcher, which admits the next window as soon as the limit allows; false when not paused.</summary>
    public async Task<bool> ResumeAsync(CancellationToken cancellationToken)
    {
        if (!await store.ResumeQueueAsync(cancellationToken))
        {
            return false;
        }

        signal.Notify();
        return true;
    }

    /// <summary>Cancels the ingestion's ids not yet handed to a window (<see cref="IQueueStore.CancelAsync"/>).</summary>
    public Task<CancelOutcome> CancelAsync(Guid ingestionId, CancellationToken cancellationToken) => store.CancelAsync(ingestionId, cancellationToken);

    /// <summary>Moves the ingestion's waiting ids to another priority (<see cref="IQueueStore.ReprioritiseAsync"/>).</summary>
    public Task<ReprioritiseOutcome> ReprioritiseAsync(Guid ingestionId, Ingest.Priority priority, CancellationToken cancellationToken) =>
        store.ReprioritiseAsync(ingestionId, priority, cancellationToken);

    /// <summary>
    /// Stores an override of the rate limit, or with null the return to the configuration: this process
    /// applies it at once, every other from its next admission.
    /// </summary>
    public async Task<LimitChange> SetLimitAsync(Scheduling.RateLimit? limit, CancellationToken cancellationToken)
    {
        var change = await store.SetLimitAsync(limit, cancellationToken);
        limits.Apply(limit, change.Seq);
        return change;
    }
}
