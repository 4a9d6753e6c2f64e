using Microsoft.Extensions.Options;

namespace IngestionService.Upstream;

public enum UpstreamMode
{
    /// <summary>The brief's stand-in: a fixed delay and <c>{"id": id, "data": "processed"}</c>.</summary>
    Simulated,

    /// <summary>A real HTTP API at <see cref="UpstreamOptions.BaseUrl"/>.</summary>
    Http,
}

/// <summary>The external API and what to do when it fails (configuration section <c>Upstream</c>).</summary>
public sealed class UpstreamOptions
{
    public const string SectionName = "Upstream";

    public UpstreamMode Mode { get; set; } = UpstreamMode.Simulated;

    /// <summary>How long the simulated external API takes to answer for one id.</summary>
    public TimeSpan SimulatedDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The real API's address (Http mode), e.g. <c>https://api.example.com</c>.</summary>
    public Uri? BaseUrl { get; set; }

    /// <summary>The path of one id's resource; <c>{id}</c> is replaced by the id.</summary>
    public string PathTemplate { get; set; } = "/items/{id}";

    /// <summary>How long one call may take before it counts as failed (and may be retried).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Headers sent with every call, e.g. <c>Upstream:Headers:X-Api-Key</c>; their values are never logged.</summary>
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>How much of each answer's body is stored; the rest is cut off (and the result says so).</summary>
    public int MaxBodyBytes { get; set; } = 64 * 1024;

    /// <summary>Calls per id before it is recorded as failed. Throttled calls (429) do not count.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>The wait before the first retry; it doubles with each failure, up to <see cref="RetryMaxDelay"/>, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The pause after a 429 that carries no (readable) Retry-After.</summary>
    public TimeSpan DefaultRetryAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest pause a Retry-After may impose; a larger one is cut to this.</summary>
    public TimeSpan MaxPause { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Whether the next window also waits a whole Ingestion:Window after the previous window's last answer,
    /// not only after its start. The upstream counts calls as they arrive, and a call can take a while to
    /// get there (a connection or TLS handshake to open, a busy network); a call that has been answered has
    /// certainly arrived, so spacing from the answers keeps the upstream's own count under the limit
    /// whatever the delays, at the cost of the calls' duration per window. Unset: on with Mode=Http, off
    /// with the simulated upstream, whose calls arrive the moment they start (the brief's timing).
    /// </summary>
    public bool? SpaceFromAnswers { get; set; }

    public bool EffectiveSpaceFromAnswers => SpaceFromAnswers ?? (Mode == UpstreamMode.Http);
}

internal sealed class UpstreamOptionsValidator : IValidateOptions<UpstreamOptions>
{
    public ValidateOptionsResult Validate(string? name, UpstreamOptions options)
    {
        var errors = new List<string>();
        if (options.SimulatedDelay < TimeSpan.Zero || options.SimulatedDelay > TimeSpan.FromHours(1))
        {
            errors.Add($"Upstream:SimulatedDelay must be between 00:00:00 and 01:00:00 (got {options.SimulatedDelay}).");
        }

        if (options.Mode == UpstreamMode.Http)
        {
            if (options.BaseUrl is not { IsAbsoluteUri: true } baseUrl || (baseUrl.Scheme != Uri.UriSchemeHttp && baseUrl.Scheme != Uri.UriSchemeHttps))
            {
                errors.Add($"Upstream:BaseUrl must be an absolute http or https address when Upstream:Mode is Http (got '{options.BaseUrl}').");
            }

            if (!options.PathTemplate.Contains("{id}", StringComparison.Ordinal))
            {
                errors.Add($"Upstream:PathTemplate must contain '{{id}}' (got '{options.PathTemplate}').");
            }
        }

        if (options.Timeout <= TimeSpan.Zero || options.Timeout > TimeSpan.FromMinutes(10))
        {
            errors.Add($"Upstream:Timeout must be more than zero and at most 00:10:00 (got {options.Timeout}).");
        }

        if (options.MaxBodyBytes is < 0 or > 16 * 1024 * 1024)
        {
            errors.Add($"Upstream:MaxBodyBytes must be between 0 and 16777216 (got {options.MaxBodyBytes}).");
        }

        if (options.MaxAttempts is < 1 or > 100)
        {
            errors.Add($"Upstream:MaxAttempts must be between 1 and 100 (got {options.MaxAttempts}).");
        }

        if (options.RetryBaseDelay < TimeSpan.Zero || options.RetryMaxDelay < options.RetryBaseDelay)
        {
            errors.Add($"Upstream:RetryBaseDelay must be at least zero and at most Upstream:RetryMaxDelay (got {options.RetryBaseDelay} and {options.RetryMaxDelay}).");
        }

        if (options.DefaultRetryAfter < TimeSpan.Zero || options.MaxPause < options.DefaultRetryAfter)
        {
            errors.Add($"Upstream:DefaultRetryAfter must be at least zero and at most Upstream:MaxPause (got {options.DefaultRetryAfter} and {options.MaxPause}).");
        }

        foreach (var (header, _) in options.Headers)
        {
            if (string.IsNullOrWhiteSpace(header) || header.Any(c => c <= ' ' || c >= 127 || c == ':'))
            {
                errors.Add($"Upstream:Headers has an invalid header name '{header}'.");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
