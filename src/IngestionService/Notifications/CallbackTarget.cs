using IngestionService.Ingest;

namespace IngestionService.Notifications;

/// <summary>Where an ingestion's event goes, and the base of the status URL it links to (ending in '/').</summary>
public sealed record CallbackTarget(Uri Url, Uri PublicBase)
{
    public string StatusUrlOf(Guid ingestionId) => new Uri(PublicBase, $"status/{ingestionId}").AbsoluteUri;

    /// <summary>
    /// The request's own <c>callback_url</c> once its host is found to be one that may be called (else the
    /// reason it may not, for a 422), or <see cref="NotificationOptions.Url"/>, or none. The status URL is
    /// based on <see cref="NotificationOptions.PublicUrl"/>, or on the address the request came to.
    /// </summary>
    public static async Task<(CallbackTarget? Target, string? Problem)> ResolveAsync(IngestParseResult parsed, HttpRequest request, NotificationOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parsed);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        if (parsed.CallbackUrl is { } url && await CallbackAddress.CheckReachableAsync(url, options.AllowPrivateNetworks, cancellationToken) is { } problem)
        {
            return (null, $"'callback_url' {problem}");
        }

        if ((parsed.CallbackUrl ?? options.Url) is not { } callback)
        {
            return (null, null);
        }

        // The address the request came to, unless configured: a request without a usable Host (HTTP/1.0) gets localhost.
        var publicBase = options.PublicUrl
            ?? (request.Host.HasValue && Uri.TryCreate($"{request.Scheme}://{request.Host}{request.PathBase}", UriKind.Absolute, out var came) ? came : new Uri($"{request.Scheme}://localhost"));
        return (new CallbackTarget(callback, publicBase.AbsoluteUri.EndsWith('/') ? publicBase : new Uri(publicBase.AbsoluteUri + "/")), null);
    }
}
