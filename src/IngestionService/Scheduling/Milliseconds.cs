namespace IngestionService.Scheduling;

/// <summary>
/// Times are stored in whole milliseconds. Starts, finishes, retry times and pauses round up, so a stored
/// time is never earlier than the real one and a limit measured from it is never shorter; a created time
/// rounds down, so the time a request is ordered by is the one its status shows.
/// </summary>
public static class Milliseconds
{
    public static DateTimeOffset Ceiling(DateTimeOffset time)
    {
        var remainder = time.UtcTicks % TimeSpan.TicksPerMillisecond;
        return remainder == 0 ? time : time.AddTicks(TimeSpan.TicksPerMillisecond - remainder);
    }

    public static TimeSpan Ceiling(TimeSpan duration) =>
        TimeSpan.FromTicks((duration.Ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond * TimeSpan.TicksPerMillisecond);

    public static DateTimeOffset Floor(DateTimeOffset time) => DateTimeOffset.FromUnixTimeMilliseconds(time.ToUnixTimeMilliseconds());
}
