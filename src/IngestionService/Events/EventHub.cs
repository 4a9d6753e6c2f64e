namespace IngestionService.Events;

/// <summary>One event of <c>GET /events</c>: its number on this instance, its type and its JSON data.</summary>
public sealed record StreamEvent(long Seq, string Type, string Data);

/// <summary>
/// What happened in the service, for the event streams: windows started and finished, queue depth
/// changes, pauses, an operator's actions, on this instance and (on PostgreSQL) heard from the others.
/// Streams wait on <see cref="Changed"/> (no database connection while idle) and read what they missed
/// with <see cref="After"/>, from the last <see cref="Kept"/> events.
/// </summary>
public sealed class EventHub
{
    public const int Kept = 1024;

    private readonly Lock _gate = new();
    private readonly StreamEvent[] _ring = new StreamEvent[Kept];
    private long _last;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Tells this process's numbers from another's (or an earlier run's), so a resume never replays the wrong events.</summary>
    private readonly string _epoch = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));

    /// <summary>The SSE id of event <paramref name="seq"/>: this process's epoch and the number.</summary>
    public string IdOf(long seq) => $"{_epoch}-{seq.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>The number in an id this process wrote; false for any other text (another instance's, an earlier run's, garbage).</summary>
    public bool TryParseId(string? id, out long seq)
    {
        seq = 0;
        return id is not null && id.Length > _epoch.Length + 1 && id.StartsWith(_epoch, StringComparison.Ordinal) && id[_epoch.Length] == '-'
            && long.TryParse(id.AsSpan(_epoch.Length + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out seq);
    }

    /// <summary>Told of every event published to share, so a shared store can tell the other instances.</summary>
    public event Action<StreamEvent>? Shared;

    /// <summary>The newest event's number; 0 before the first.</summary>
    public long Last
    {
        get
        {
            lock (_gate)
            {
                return _last;
            }
        }
    }

    /// <summary>Completes at the next event.</summary>
    public Task Changed
    {
        get
        {
            lock (_gate)
            {
                return _changed.Task;
            }
        }
    }

    /// <summary>Numbers the event, keeps it, and wakes every stream; with <paramref name="share"/>, the other instances are told of it too.</summary>
    public StreamEvent Publish(string type, string data, bool share = false)
    {
        StreamEvent published;
        TaskCompletionSource changed;
        lock (_gate)
        {
            published = new StreamEvent(++_last, type, data);
            _ring[published.Seq % Kept] = published;
            changed = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
        if (share)
        {
            Shared?.Invoke(published);
        }

        return published;
    }

    /// <summary>The events after <paramref name="seq"/>, oldest first; null when some of them are no longer kept.</summary>
    public IReadOnlyList<StreamEvent>? After(long seq)
    {
        lock (_gate)
        {
            if (seq >= _last)
            {
                return [];
            }

            if (_last - seq > Kept)
            {
                return null;
            }

            var events = new StreamEvent[_last - seq];
            for (var i = 0; i < events.Length; i++)
            {
                events[i] = _ring[(seq + 1 + i) % Kept];
            }

            return events;
        }
    }
}
