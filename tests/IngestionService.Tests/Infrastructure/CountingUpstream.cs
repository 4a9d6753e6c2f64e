using System.Collections.Concurrent;
using System.Globalization;
using IngestionService.Upstream;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// The simulated upstream's behaviour (a delay on the given clock, then the brief's body) that also
/// records every call and the most calls it ever had in flight at once. A script may answer otherwise:
/// it is given the id and how many times it was called before, and returns the answer, or null for the
/// brief's success.
/// </summary>
/// <remarks>
/// Written with an inline continuation rather than <c>async</c>/<c>await</c> so that a fetch is complete
/// the moment the fake clock fires its timer: the harness decides from <c>Task.IsCompleted</c> whether
/// the dispatcher is about to move, and must not see a fetch that is done but not yet marked so.
/// </remarks>
public sealed class CountingUpstream(TimeProvider clock, TimeSpan delay, Func<int, int, UpstreamAnswer?>? script = null) : IUpstreamClient
{
    private readonly ConcurrentDictionary<int, int> _callsPerId = new();
    private readonly InFlight _inFlight = new();

    public ConcurrentQueue<(int Id, DateTimeOffset StartedAt)> Calls { get; } = new();

    public int MaxInFlight => _inFlight.Most;

    public Task<UpstreamAnswer> FetchAsync(int id, CancellationToken cancellationToken)
    {
        Calls.Enqueue((id, clock.GetUtcNow()));
        var before = _callsPerId.AddOrUpdate(id, 1, (_, calls) => calls + 1) - 1;
        _inFlight.Started();

        // WaitAsync, not Delay's own token: a fake-clock Delay whose token is cancelled by the code under
        // test did not complete here (seen with FakeTimeProvider), so a cancelled call never ended.
        return Task.Delay(delay, clock, CancellationToken.None).WaitAsync(cancellationToken).ContinueWith(
            delayed =>
            {
                _inFlight.Ended();
                delayed.GetAwaiter().GetResult();
                return script?.Invoke(id, before)
                    ?? UpstreamAnswer.Success(string.Create(CultureInfo.InvariantCulture, $$"""{"id":{{id}},"data":"processed"}"""));
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }
}
