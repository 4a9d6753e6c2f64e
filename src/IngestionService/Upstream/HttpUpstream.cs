using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Extensions.Options;
using Polly.Timeout;

namespace IngestionService.Upstream;

/// <summary>
/// A real HTTP API: <c>GET {BaseUrl}{PathTemplate}</c> per id (the two joined as text, so a base path such
/// as <c>/v1</c> is kept), with the configured headers, through an
/// <see cref="HttpClient"/> from <see cref="IHttpClientFactory"/> whose resilience pipeline holds only a
/// timeout. It retries nothing itself: every call must be one of the window's calls, so retries go back
/// to the queue and wait for a window like any other id.
/// </summary>
public sealed class HttpUpstream(HttpClient client, IOptions<UpstreamOptions> options, TimeProvider clock) : IUpstreamClient
{
    public const string ClientName = "upstream";

    private readonly string _address = options.Value.BaseUrl!.ToString().TrimEnd('/') + "/" + options.Value.PathTemplate.TrimStart('/');
    private readonly int _maxBodyBytes = options.Value.MaxBodyBytes;
    private readonly TimeSpan _timeout = options.Value.Timeout;

    public async Task<UpstreamAnswer> FetchAsync(int id, CancellationToken cancellationToken)
    {
        var address = new Uri(_address.Replace("{id}", id.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));

        // The pipeline's timeout ends when the headers arrive; this one also covers the body, so an upstream
        // that answers and then stalls cannot hold a window (and with it every window after it) forever.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_timeout);
        try
        {
            using var response = await client.GetAsync(address, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
            var (body, truncated) = await ReadCappedAsync(response.Content, deadline.Token);
            var status = (int)response.StatusCode;
            return Classify(response, status) switch
            {
                UpstreamVerdict.Succeeded => new UpstreamAnswer(UpstreamVerdict.Succeeded, status, body, truncated),
                var verdict => new UpstreamAnswer(verdict, status, body, truncated, Describe(response, status), RetryAfter(response)),
            };
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception exception) when (exception is TimeoutRejectedException or OperationCanceledException)
        {
            return new UpstreamAnswer(UpstreamVerdict.Retryable, null, null, Error: $"No answer within {_timeout}");
        }
        catch (HttpRequestException exception)
        {
            return new UpstreamAnswer(UpstreamVerdict.Retryable, null, null, Error: exception.HttpRequestError == HttpRequestError.Unknown
                ? exception.Message
                : $"{exception.HttpRequestError}: {exception.Message}");
        }
        catch (IOException exception)
        {
            return new UpstreamAnswer(UpstreamVerdict.Retryable, null, null, Error: exception.Message);
        }
    }

    /// <summary>
    /// 429 is a quota, as is a 503 that says when to come back; other 4xx will not change by asking again.
    /// Redirects are not followed (a second request would be a call the limiter never admitted, and would
    /// carry the API key to another host): a 3xx is a permanent failure that names where it pointed.
    /// </summary>
    private static UpstreamVerdict Classify(HttpResponseMessage response, int status) => status switch
    {
        >= 200 and < 300 => UpstreamVerdict.Succeeded,
        >= 300 and < 400 => UpstreamVerdict.Permanent,
        429 => UpstreamVerdict.Throttled,
        503 when response.Headers.RetryAfter is not null => UpstreamVerdict.Throttled,
        408 or >= 500 => UpstreamVerdict.Retryable,
        _ => UpstreamVerdict.Permanent,
    };

    private static string Describe(HttpResponseMessage response, int status)
    {
        var text = $"HTTP {status} {response.ReasonPhrase}".TrimEnd();
        return status is >= 300 and < 400 ? $"{text} to {response.Headers.Location?.ToString() ?? "nowhere"} (redirects are not followed)" : text;
    }

    /// <summary>Retry-After as seconds or as an HTTP date; null when absent or unreadable.</summary>
    private TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta < TimeSpan.Zero ? TimeSpan.Zero : delta,
        { Date: { } date } => date - clock.GetUtcNow() is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero,
        _ => null,
    };

    /// <summary>Reads at most <see cref="UpstreamOptions.MaxBodyBytes"/> and says whether there was more.</summary>
    private async Task<(string Body, bool Truncated)> ReadCappedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[Math.Min(_maxBodyBytes + 1, 81_920)];
        using var kept = new MemoryStream();
        int read;
        while (kept.Length <= _maxBodyBytes && (read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            kept.Write(buffer, 0, read);
        }

        var truncated = kept.Length > _maxBodyBytes;
        var bytes = kept.GetBuffer().AsSpan(0, (int)Math.Min(kept.Length, _maxBodyBytes));
        var encoding = content.Headers.ContentType?.CharSet is { } charset && TryEncoding(charset) is { } named ? named : Encoding.UTF8;
        return (encoding.GetString(bytes), truncated);
    }

    private static Encoding? TryEncoding(string charset)
    {
        try
        {
            return Encoding.GetEncoding(charset.Trim('"'));
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
