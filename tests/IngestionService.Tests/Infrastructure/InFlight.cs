namespace IngestionService.Tests.Infrastructure;

/// <summary>How many calls a fake upstream is answering now, and the most it ever was at once.</summary>
public sealed class InFlight
{
    private int _now;
    private int _most;

    public int Most => Volatile.Read(ref _most);

    public void Started()
    {
        var now = Interlocked.Increment(ref _now);
        int seen;
        while (now > (seen = Volatile.Read(ref _most)) && Interlocked.CompareExchange(ref _most, now, seen) != seen)
        {
        }
    }

    public void Ended() => Interlocked.Decrement(ref _now);
}
