namespace IngestionService.Upstream;

/// <summary>The external API that data is fetched from, one id per call.</summary>
public interface IUpstreamClient
{
    /// <summary>
    /// Makes one call for one id and says what came of it. Failures of the call (an error status, a
    /// timeout, a refused connection) are answers, not exceptions; only cancellation throws.
    /// </summary>
    Task<UpstreamAnswer> FetchAsync(int id, CancellationToken cancellationToken);
}

/// <summary>How one upstream call ended, as far as what to do next is concerned.</summary>
public enum UpstreamVerdict
{
    /// <summary>The data came back (2xx).</summary>
    Succeeded,

    /// <summary>Worth another try later: 5xx, 408, a timeout, a connection error.</summary>
    Retryable,

    /// <summary>Another try would get the same answer: any other 4xx.</summary>
    Permanent,

    /// <summary>The upstream's quota is gone (429, or 503 with Retry-After): everything pauses.</summary>
    Throttled,
}

/// <summary>
/// One call's answer. <see cref="HttpStatus"/> is null when no HTTP answer came (timeout, connection
/// error) and for the simulated upstream; <see cref="Body"/> is cut at the configured size.
/// </summary>
public sealed record UpstreamAnswer(
    UpstreamVerdict Verdict,
    int? HttpStatus,
    string? Body,
    bool BodyTruncated = false,
    string? Error = null,
    TimeSpan? RetryAfter = null)
{
    public static UpstreamAnswer Success(string body, int? httpStatus = null) => new(UpstreamVerdict.Succeeded, httpStatus, body);
}
