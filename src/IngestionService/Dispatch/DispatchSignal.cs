namespace IngestionService.Dispatch;

/// <summary>
/// Wakes an idle dispatcher when new work is committed. Only a hint: the store is the source of truth,
/// so a lost or extra wake-up costs one query, never correctness. Notifications made while nobody
/// waits are remembered as one, so work committed just before the dispatcher parks is not missed.
/// </summary>
/// <remarks>
/// The waiter gets the completion source's own task, which is marked complete inside
/// <see cref="Notify"/> itself (its continuations still run asynchronously): tests on a fake clock can
/// then tell from <c>Task.IsCompleted</c> alone whether the dispatcher is about to move.
/// </remarks>
public sealed class DispatchSignal
{
    private readonly Lock _gate = new();
    private TaskCompletionSource? _waiter;
    private bool _pending;

    public void Notify()
    {
        TaskCompletionSource? waiter;
        lock (_gate)
        {
            waiter = _waiter;
            _waiter = null;
            _pending = waiter is null;
        }

        waiter?.TrySetResult();
    }

    public Task WaitAsync(CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_gate)
        {
            if (_pending)
            {
                _pending = false;
                return Task.CompletedTask;
            }

            waiter = _waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.Register(() => waiter.TrySetCanceled(cancellationToken));
            waiter.Task.ContinueWith(_ => registration.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        return waiter.Task;
    }
}
