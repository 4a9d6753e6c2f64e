using IngestionService.Storage;
using Microsoft.Extensions.Options;

namespace IngestionService.Upstream;

/// <summary>
/// Turns one call's answer into what happens to its id: stored as succeeded, recorded as failed for good,
/// or put back in the queue until a later window. Retries never wait inside a window (that window's
/// calls are spent); the delay grows exponentially with the id's failures, with equal jitter (between
/// half and all of it) so that ids that failed together do not all come due together. A throttled call
/// (429, or 503 with Retry-After) is the upstream's quota, not the id's failure: it does not count toward
/// <see cref="UpstreamOptions.MaxAttempts"/> and pauses every window instead.
/// </summary>
public sealed class RetryPolicy
{
    private readonly UpstreamOptions _options;
    private readonly Func<double> _random;

    public RetryPolicy(IOptions<UpstreamOptions> options)
        : this(options, Random.Shared.NextDouble)
    {
    }

    internal RetryPolicy(IOptions<UpstreamOptions> options, Func<double> random)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _random = random;
    }

    /// <summary>The pause a throttled answer asks for, within <see cref="UpstreamOptions.MaxPause"/>.</summary>
    public TimeSpan PauseFor(UpstreamAnswer answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var pause = answer.RetryAfter ?? _options.DefaultRetryAfter;
        return pause > _options.MaxPause ? _options.MaxPause : pause;
    }

    public FetchOutcome Decide(WindowItem item, UpstreamAnswer answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var attempts = item.PriorAttempts + 1;
        var throttled = item.PriorThrottled;
        switch (answer.Verdict)
        {
            case UpstreamVerdict.Succeeded:
                return new FetchOutcome(FetchState.Succeeded, answer.HttpStatus, answer.Body, answer.BodyTruncated, null, attempts, throttled, null);
            case UpstreamVerdict.Permanent:
                return new FetchOutcome(FetchState.Failed, answer.HttpStatus, answer.Body, answer.BodyTruncated, answer.Error, attempts, throttled, null);
            case UpstreamVerdict.Throttled:
                return new FetchOutcome(FetchState.Retrying, answer.HttpStatus, answer.Body, answer.BodyTruncated, answer.Error, attempts, throttled + 1, PauseFor(answer));
            default:
                var failures = attempts - throttled;
                return failures >= _options.MaxAttempts
                    ? new FetchOutcome(FetchState.Failed, answer.HttpStatus, answer.Body, answer.BodyTruncated, $"{answer.Error} (gave up after {failures} failed attempts)", attempts, throttled, null)
                    : new FetchOutcome(FetchState.Retrying, answer.HttpStatus, answer.Body, answer.BodyTruncated, answer.Error, attempts, throttled, Backoff(failures));
        }
    }

    /// <summary>RetryBaseDelay × 2^(failures − 1), capped at RetryMaxDelay, then a random point in its upper half.</summary>
    internal TimeSpan Backoff(int failures)
    {
        var exponential = _options.RetryBaseDelay.Ticks * Math.Pow(2, Math.Min(failures - 1, 30));
        var capped = Math.Min(exponential, _options.RetryMaxDelay.Ticks);
        return TimeSpan.FromTicks((long)(capped / 2 * (1 + _random())));
    }
}
