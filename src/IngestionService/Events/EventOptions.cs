using Microsoft.Extensions.Options;

namespace IngestionService.Events;

/// <summary>The event streams (configuration section <c>Events</c>).</summary>
public sealed class EventOptions
{
    public const string SectionName = "Events";

    /// <summary>Streams one instance keeps open at once; one more is answered 503 with Retry-After.</summary>
    public int MaxStreams { get; set; } = 100;

    /// <summary>How often an idle stream sends a comment line, so proxies keep it open.</summary>
    public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long a browser waits before reconnecting once a stream drops (the SSE <c>retry</c> field).</summary>
    public TimeSpan Reconnect { get; set; } = TimeSpan.FromSeconds(2);
}

internal sealed class EventOptionsValidator : IValidateOptions<EventOptions>
{
    public ValidateOptionsResult Validate(string? name, EventOptions options)
    {
        var errors = new List<string>();
        if (options.MaxStreams is < 1 or > 100_000)
        {
            errors.Add($"Events:MaxStreams must be between 1 and 100000 (got {options.MaxStreams}).");
        }

        if (options.Heartbeat < TimeSpan.FromMilliseconds(100) || options.Heartbeat > TimeSpan.FromMinutes(5))
        {
            errors.Add($"Events:Heartbeat must be between 00:00:00.100 and 00:05:00 (got {options.Heartbeat}).");
        }

        if (options.Reconnect < TimeSpan.FromMilliseconds(100) || options.Reconnect > TimeSpan.FromMinutes(5))
        {
            errors.Add($"Events:Reconnect must be between 00:00:00.100 and 00:05:00 (got {options.Reconnect}).");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>The open streams of this instance, at most <see cref="EventOptions.MaxStreams"/>.</summary>
public sealed class StreamSlots(IOptions<EventOptions> options)
{
    private int _open;

    public int Open => Volatile.Read(ref _open);

    public bool TryTake()
    {
        if (Interlocked.Increment(ref _open) <= options.Value.MaxStreams)
        {
            return true;
        }

        Interlocked.Decrement(ref _open);
        return false;
    }

    public void Give() => Interlocked.Decrement(ref _open);
}
