using IngestionService.Storage;

namespace IngestionService.Notifications;

/// <summary>
/// What an attempt's answer means for its event, in one place: a 2xx delivers it, a 410 Gone stops it,
/// anything else (another status, a timeout, no connection) is tried again after a wait that doubles
/// with each attempt from <see cref="NotificationOptions.RetryBaseDelay"/> up to
/// <see cref="NotificationOptions.RetryMaxDelay"/>, with full jitter in its upper half, while the next
/// attempt would still fall within <see cref="NotificationOptions.MaxAge"/> of the event.
/// </summary>
public static class DeliveryRule
{
    /// <param name="attempts">Attempts made, this one included.</param>
    /// <param name="httpStatus">The status answered, or null when no answer came.</param>
    /// <param name="age">How long ago the event happened, now that this attempt is over.</param>
    /// <param name="options">The delays and <see cref="NotificationOptions.MaxAge"/>.</param>
    /// <param name="jitter">A number in [0, 1).</param>
    public static DeliveryNext Decide(int attempts, int? httpStatus, TimeSpan age, NotificationOptions options, double jitter)
    {
        ArgumentNullException.ThrowIfNull(options);
        switch (httpStatus)
        {
            case >= 200 and < 300:
                return new DeliveryNext(DeliveryState.Delivered, TimeSpan.Zero);
            case 410:
                return new DeliveryNext(DeliveryState.Stopped, TimeSpan.Zero);
        }

        var wait = Backoff(attempts, options) * (0.5 + (jitter / 2));
        return age + wait > options.MaxAge
            ? new DeliveryNext(DeliveryState.GivenUp, TimeSpan.Zero)
            : new DeliveryNext(DeliveryState.Pending, wait);
    }

    /// <summary>The wait before attempt <paramref name="attempts"/> + 1, before jitter.</summary>
    public static TimeSpan Backoff(int attempts, NotificationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        // In seconds, as a double: the base times 2^n leaves TimeSpan's range long before it reaches the cap's.
        var seconds = options.RetryBaseDelay.TotalSeconds * Math.Pow(2, Math.Clamp(attempts - 1, 0, 60));
        return seconds >= options.RetryMaxDelay.TotalSeconds ? options.RetryMaxDelay : TimeSpan.FromSeconds(seconds);
    }
}
