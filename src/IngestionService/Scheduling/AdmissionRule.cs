namespace IngestionService.Scheduling;

/// <summary>
/// How far apart windows must be: <see cref="Window"/> after the newest window's start, and with
/// <see cref="FromFinish"/> also after its finish (its last answer).
/// </summary>
public readonly record struct WindowSpacing(TimeSpan Window, bool FromFinish = false)
{
    public static implicit operator WindowSpacing(TimeSpan window) => FromTimeSpan(window);

    public static WindowSpacing FromTimeSpan(TimeSpan window) => new(window);
}

/// <summary>
/// What the limiter needs to know about the window log, as a backend reads it: the newest window's start
/// and finish, the end of the newest pause the upstream asked for, whether a window still runs, and
/// whether an operator paused the queue (until resumed: no end is known); <see cref="LastWindow"/>, the
/// Window that was in force when the newest window started (null when not known: the current one counts).
/// </summary>
public readonly record struct LimiterFacts(
    DateTimeOffset? LastStart,
    DateTimeOffset? LastFinish = null,
    DateTimeOffset? PausedUntil = null,
    bool WindowRunning = false,
    bool QueuePaused = false,
    TimeSpan? LastWindow = null);

/// <summary>
/// The limiter's answer: admit a window now, ask again after <see cref="RetryAfter"/>, or, while the queue
/// is <see cref="Held"/> (paused by an operator), not before it is resumed, which no clock can tell.
/// </summary>
public readonly record struct Admission(bool Admitted, TimeSpan RetryAfter, bool Held = false)
{
    public static Admission Now => new(true, TimeSpan.Zero);

    public static Admission WhilePaused => new(false, TimeSpan.Zero, Held: true);

    public static Admission After(TimeSpan retryAfter) => new(false, retryAfter);
}

/// <summary>
/// The rate limit, in one place: a window starts no sooner than <see cref="WindowSpacing.Window"/> after
/// the previous start (and, spaced from the finish, after the previous last answer), or the Window of the
/// previous start if the limit changed and that was longer (<see cref="RateLimit.Spacing"/>), never while an
/// operator has paused the queue, never during a pause the upstream asked for, and never while another window runs, so no more than one window of ids is ever
/// in flight. Every backend reads the facts in its own transaction and on its own clock and asks this;
/// the dispatcher asks it too for its own next start.
/// </summary>
public static class AdmissionRule
{
    /// <summary>The earliest moment the next window may start, whatever runs now; <see cref="DateTimeOffset.MinValue"/> with an empty log.</summary>
    public static DateTimeOffset NotBefore(LimiterFacts facts, WindowSpacing spacing)
    {
        var window = RateLimit.Spacing(facts.LastWindow, spacing.Window);
        var notBefore = facts.LastStart is { } start ? start + window : DateTimeOffset.MinValue;
        if (facts.PausedUntil is { } paused && paused > notBefore)
        {
            notBefore = paused;
        }

        if (spacing.FromFinish && facts.LastFinish is { } finish && finish + window > notBefore)
        {
            notBefore = finish + window;
        }

        return notBefore;
    }

    /// <summary>
    /// Whether a window may start at <paramref name="now"/>. While a window runs the answer is never
    /// sooner than <paramref name="recheckWhileRunning"/>: it may finish any moment without telling this
    /// backend (another instance's), so the caller looks again then.
    /// </summary>
    public static Admission Decide(LimiterFacts facts, DateTimeOffset now, WindowSpacing spacing, TimeSpan recheckWhileRunning)
    {
        if (facts.QueuePaused)
        {
            return Admission.WhilePaused;
        }

        var wait = NotBefore(facts, spacing) - now;
        if (facts.WindowRunning)
        {
            return Admission.After(wait > recheckWhileRunning ? wait : recheckWhileRunning);
        }

        return wait > TimeSpan.Zero ? Admission.After(wait) : Admission.Now;
    }
}
