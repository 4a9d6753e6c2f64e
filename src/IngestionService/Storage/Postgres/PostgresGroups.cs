using System.Threading.Channels;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// Requests that arrive while a call to the database is in flight share the next call: one round trip,
/// one wake-up and one socket read per group instead of per request, and a lone request goes at once.
/// The shared submissions (<see cref="PostgresGroupCommit"/>) and status reads
/// (<see cref="PostgresStatusReads"/>) both run on this. The call answers the requests of a
/// group in their order; if it throws, every request of the group gets that exception. Up to
/// <c>concurrentCalls</c> calls are in flight at once, each gathering its own group of at most
/// <c>maxPerGroup</c> requests; with a <c>weight</c>, a group also stops growing past <c>maxWeight</c>
/// (a request of any weight still goes alone).
/// </summary>
internal sealed class PostgresGroups<TRequest, TResult> : IAsyncDisposable
{
    private readonly Func<IReadOnlyList<TRequest>, Task<TResult[]>> _call;
    private readonly int _maxPerGroup;
    private readonly Func<TRequest, long>? _weight;
    private readonly long _maxWeight;
    private readonly Channel<Pending> _requests;
    private readonly Task[] _loops;

    public PostgresGroups(Func<IReadOnlyList<TRequest>, Task<TResult[]>> call, int maxPerGroup, int concurrentCalls = 1, Func<TRequest, long>? weight = null, long maxWeight = long.MaxValue)
    {
        (_call, _maxPerGroup, _weight, _maxWeight) = (call, maxPerGroup, weight, maxWeight);
        _requests = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = concurrentCalls == 1 });
        _loops = [.. Enumerable.Range(0, concurrentCalls).Select(_ => Task.Run(LoopAsync))];
    }

    /// <summary>
    /// Hands the request to the next group. Not cancellable: once handed over it may be carried out (an
    /// insert committed), so a caller that stops waiting must not assume it was not.
    /// </summary>
    public Task<TResult> SubmitAsync(TRequest request)
    {
        var pending = new Pending(request);
        if (!_requests.Writer.TryWrite(pending))
        {
            throw new InvalidOperationException("The store is shutting down and takes no new requests.");
        }

        return pending.Task;
    }

    private async Task LoopAsync()
    {
        var reader = _requests.Reader;
        var group = new List<Pending>(_maxPerGroup);
        while (await reader.WaitToReadAsync())
        {
            long gathered = 0;
            while (group.Count < _maxPerGroup && (group.Count == 0 || gathered < _maxWeight) && reader.TryRead(out var pending))
            {
                group.Add(pending);
                gathered += _weight?.Invoke(pending.Request) ?? 1;
            }

            if (group.Count == 0)
            {
                continue; // another loop took them
            }

            try
            {
                var results = await _call(group.ConvertAll(pending => pending.Request));
                for (var i = 0; i < group.Count; i++)
                {
                    group[i].TrySetResult(results[i]);
                }
            }
            catch (Exception exception)
            {
                foreach (var pending in group)
                {
                    pending.TrySetException(exception);
                }
            }

            group.Clear();
        }
    }

    /// <summary>Takes no new requests and waits for the ones handed over to be answered.</summary>
    public async ValueTask DisposeAsync()
    {
        _requests.Writer.TryComplete();
        await Task.WhenAll(_loops);
    }

    private sealed class Pending(TRequest request) : TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public TRequest Request { get; } = request;
    }
}
