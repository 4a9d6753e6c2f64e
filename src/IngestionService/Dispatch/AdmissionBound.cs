namespace IngestionService.Dispatch;

/// <summary>
/// The earliest moment this process may start its next window, as the dispatcher last worked it out;
/// the store's limiter may still say later. Written by the dispatcher's loop and read from request
/// threads (status estimates, the queue view, backpressure), so it is kept as one 64-bit value that a
/// reader always sees whole.
/// </summary>
public sealed class AdmissionBound
{
    private long _utcTicks = DateTimeOffset.MinValue.UtcTicks;

    public DateTimeOffset NotBefore => new(Volatile.Read(ref _utcTicks), TimeSpan.Zero);

    /// <summary>The bound, or <paramref name="now"/> if that is later: when the next window may start, seen from now.</summary>
    public DateTimeOffset NotBeforeFrom(DateTimeOffset now) => NotBefore is var bound && bound > now ? bound : now;

    internal void Set(DateTimeOffset notBefore) => Volatile.Write(ref _utcTicks, notBefore.UtcTicks);
}
