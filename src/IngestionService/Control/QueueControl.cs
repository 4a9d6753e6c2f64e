using IngestionService.Dispatch;
using IngestionService.Storage;

namespace IngestionService.Control;

/// <summary>
/// An operator's actions on the queue, for the HTTP API and anything else that acts: each is one store
/// transaction, and what should wake this process's dispatcher does (other instances see it at their
/// next poll).
/// </summary>
public sealed class QueueControl(IQueueStore store, DispatchSignal signal, LimitInForce limits, TimeProvider clock, Events.ServiceEvents? events = null, Notifications.OutboxSignal? finals = null)
{
    /// <summary>No window is admitted until <see cref="ResumeAsync"/>; the window in flight finishes.</summary>
    public async Task<QueuePause> PauseAsync(string? reason, CancellationToken cancellationToken)
    {
        var pause = await store.PauseQueueAsync(reason, cancellationToken);
        events?.Paused(pause);
        return pause;
    }

    /// <summary>Ends the pause and wakes the dispatcher, which admits the next window as soon as the limit allows; false when not paused.</summary>
    public async Task<bool> ResumeAsync(CancellationToken cancellationToken)
    {
        if (!await store.ResumeQueueAsync(cancellationToken))
        {
            return false;
        }

        signal.Notify();
        events?.Resumed(clock.GetUtcNow());
        return true;
    }

    /// <summary>Cancels the ingestion's ids not yet handed to a window (<see cref="IQueueStore.CancelAsync"/>).</summary>
    public async Task<CancelOutcome> CancelAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        var outcome = await store.CancelAsync(ingestionId, cancellationToken);
        if (outcome == CancelOutcome.Cancelled)
        {
            events?.Cancelled(ingestionId);
            finals?.Notify(); // with nothing of it in flight, the cancel made it final: its event is in the outbox
        }

        return outcome;
    }

    /// <summary>Moves the ingestion's waiting ids to another priority (<see cref="IQueueStore.ReprioritiseAsync"/>).</summary>
    public async Task<ReprioritiseOutcome> ReprioritiseAsync(Guid ingestionId, Ingest.Priority priority, CancellationToken cancellationToken)
    {
        var outcome = await store.ReprioritiseAsync(ingestionId, priority, cancellationToken);
        if (outcome == ReprioritiseOutcome.Moved)
        {
            events?.Moved(ingestionId, priority);
        }

        return outcome;
    }

    /// <summary>
    /// Stores an override of the rate limit, or with null the return to the configuration: this process
    /// applies it at once, every other from its next admission.
    /// </summary>
    public async Task<LimitChange> SetLimitAsync(Scheduling.RateLimit? limit, CancellationToken cancellationToken)
    {
        var change = await store.SetLimitAsync(limit, cancellationToken);
        limits.Apply(limit, change.Seq);
        events?.LimitChanged(change, limits.Current);
        return change;
    }
}
