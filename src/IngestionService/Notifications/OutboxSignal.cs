using IngestionService.Dispatch;

namespace IngestionService.Notifications;

/// <summary>
/// Wakes the webhook delivery loop when this process may have made an ingestion final (a window
/// stored, a cancel, ids expired). A hint, as the dispatcher's signal is: the outbox is the truth, and the
/// loop also looks every <see cref="NotificationOptions.PollInterval"/> for other instances' events and retries.
/// </summary>
public sealed class OutboxSignal
{
    private readonly DispatchSignal _signal = new();

    public void Notify() => _signal.Notify();

    public Task WaitAsync(CancellationToken cancellationToken) => _signal.WaitAsync(cancellationToken);
}
