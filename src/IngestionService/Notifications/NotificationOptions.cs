using Microsoft.Extensions.Options;

namespace IngestionService.Notifications;

/// <summary>Webhooks: who is told when an ingestion is done, how it is signed and retried (configuration section <c>Notifications</c>).</summary>
public sealed class NotificationOptions
{
    public const string SectionName = "Notifications";

    /// <summary>A callback for every ingestion submitted without its own <c>callback_url</c>; none when unset.</summary>
    public Uri? Url { get; set; }

    /// <summary>
    /// The Standard Webhooks secret, <c>whsec_</c> and the base64 of 24 to 64 random bytes; deliveries are
    /// signed with it (<c>webhook-signature</c>). Unset: deliveries go unsigned, and the start-up log warns.
    /// </summary>
    public string? SigningSecret { get; set; }

    /// <summary>How long an event is retried after the ingestion finished before it is given up.</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromHours(24);

    /// <summary>How long one attempt may take (connection, request and answer) before it counts as failed.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The wait before the second attempt; it doubles with each failure, up to <see cref="RetryMaxDelay"/>, with jitter.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Whether callbacks may reach loopback, private, link-local and unique-local addresses. Off: such a
    /// callback is refused at submission (422) and, should its name resolve there later, at delivery.
    /// </summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>
    /// The address clients reach this service at, for the status URL in each event (e.g. behind a proxy,
    /// <c>https://ingest.example.com</c>). Unset: the scheme and host of the submitting request.
    /// </summary>
    public Uri? PublicUrl { get; set; }

    /// <summary>Events delivered at once by one instance.</summary>
    public int MaxConcurrentDeliveries { get; set; } = 8;

    /// <summary>How often an instance looks for due events (another instance's, or retries) when nothing woke it.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
}

internal sealed class NotificationOptionsValidator : IValidateOptions<NotificationOptions>
{
    public ValidateOptionsResult Validate(string? name, NotificationOptions options)
    {
        var errors = new List<string>();
        if (options.Url is not null && CallbackAddress.CheckSyntax(options.Url.OriginalString, out _) is { } urlError)
        {
            errors.Add($"Notifications:Url {urlError}");
        }
        else if (options.Url is { } url && !options.AllowPrivateNetworks && CallbackAddress.IsPrivateAsWritten(url))
        {
            // A name is checked at each delivery, against the address it resolves to then.
            errors.Add($"Notifications:Url points into the private network ({url.Host}); set Notifications:AllowPrivateNetworks=true if that is meant.");
        }

        if (options.PublicUrl is not null && CallbackAddress.CheckSyntax(options.PublicUrl.OriginalString, out _) is { } publicError)
        {
            errors.Add($"Notifications:PublicUrl {publicError}");
        }

        if (options.SigningSecret is not null && !WebhookSigner.TryDecodeSecret(options.SigningSecret, out _))
        {
            errors.Add("Notifications:SigningSecret must be 'whsec_' followed by the base64 of 24 to 64 bytes (generate one with: echo whsec_$(openssl rand -base64 32)).");
        }

        if (options.MaxAge <= TimeSpan.Zero || options.MaxAge > TimeSpan.FromDays(30))
        {
            errors.Add($"Notifications:MaxAge must be more than zero and at most 30.00:00:00 (got {options.MaxAge}).");
        }

        if (options.Timeout <= TimeSpan.Zero || options.Timeout > TimeSpan.FromMinutes(5))
        {
            errors.Add($"Notifications:Timeout must be more than zero and at most 00:05:00 (got {options.Timeout}).");
        }

        if (options.RetryBaseDelay <= TimeSpan.Zero || options.RetryMaxDelay < options.RetryBaseDelay)
        {
            errors.Add($"Notifications:RetryBaseDelay must be more than zero and at most Notifications:RetryMaxDelay (got {options.RetryBaseDelay} and {options.RetryMaxDelay}).");
        }

        if (options.MaxConcurrentDeliveries is < 1 or > 256)
        {
            errors.Add($"Notifications:MaxConcurrentDeliveries must be between 1 and 256 (got {options.MaxConcurrentDeliveries}).");
        }

        if (options.PollInterval < TimeSpan.FromMilliseconds(10) || options.PollInterval > TimeSpan.FromMinutes(1))
        {
            errors.Add($"Notifications:PollInterval must be between 00:00:00.010 and 00:01:00 (got {options.PollInterval}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
