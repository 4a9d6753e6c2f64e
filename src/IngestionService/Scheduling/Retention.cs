namespace IngestionService.Scheduling;

/// <summary>
/// How long finished work is kept (<c>Ingestion:Retention</c>) and what a sweep may delete, in one place.
/// An ingestion is purged, with its results and its part of the window log, once its last id reached a
/// final state (succeeded, failed, cancelled or expired) longer ago than the retention; one with an id
/// waiting, retrying or running never is, whatever its age. A window's row goes once it is older than
/// the retention, none of its ingestions is kept, and it is not among the newest <see cref="KeptWindows"/>,
/// which the limiter (the newest start) and the compliance figure read. Expired idempotency keys go too.
/// Each sweep works in batches of at most <see cref="IdsPerBatch"/> ids, so no transaction holds the store long.
/// A batch that deletes ingestions looks only at the windows it took items from, so its cost does not grow
/// with the window log; the batch that finds no ingestion left looks at the whole log once, for windows
/// whose last items went while they were still among the newest.
/// </summary>
public static class Retention
{
    public static readonly TimeSpan Default = TimeSpan.FromDays(7);

    public static readonly TimeSpan Minimum = TimeSpan.FromMinutes(1);

    public static readonly TimeSpan Maximum = TimeSpan.FromDays(3650);

    /// <summary>The newest windows a sweep always keeps, whatever their age.</summary>
    public const int KeptWindows = 1000;

    /// <summary>The ids (so the result rows) one batch deletes at most (a few milliseconds' work); a larger ingestion is one batch of its own.</summary>
    public const int IdsPerBatch = 500;

    /// <summary>Ingestions, windows or keys one batch looks at.</summary>
    public const int RowsPerBatch = 200;

    /// <summary>The least pause between two batches of one sweep, in which submissions and windows write.</summary>
    public static readonly TimeSpan BetweenBatches = TimeSpan.FromMilliseconds(20);

    /// <summary>The longest pause between two batches, after a batch that took long (a large ingestion).</summary>
    public static readonly TimeSpan LongestPause = TimeSpan.FromSeconds(5);

    /// <summary>A pause is this many times the batch before it, so a sweep holds the store's write lock for at most 1/51 of its time.</summary>
    public const int PausePerBatchTime = 50;

    public static string? Problem(TimeSpan retention) =>
        retention < Minimum || retention > Maximum
            ? $"must be between {Minimum:c} and {Maximum.TotalDays:0}.00:00:00, such as {Default.TotalDays:0}.00:00:00 (got {retention:c})"
            : null;

    /// <summary>How often the sweeper runs: a tenth of the retention, at most once a minute, so nothing outlives it by much.</summary>
    public static TimeSpan SweepInterval(TimeSpan retention) => TimeSpan.FromTicks(Math.Min(retention.Ticks / 10, TimeSpan.TicksPerMinute));

    /// <summary>
    /// The pause after a batch that took <paramref name="batch"/>: fifty times as long, between
    /// <see cref="BetweenBatches"/> and <see cref="LongestPause"/>. A submission that comes during a batch
    /// waits for the rest of it, so the fewer of them do, the less the sweep shows in their tail latency
    /// (measured by <c>bench.py sweep</c>); the sweep still deletes thousands of ids a second, far more
    /// than any upstream limit lets in.
    /// </summary>
    public static TimeSpan PauseAfter(TimeSpan batch) =>
        TimeSpan.FromTicks(Math.Clamp(batch.Ticks * PausePerBatchTime, BetweenBatches.Ticks, LongestPause.Ticks));

    /// <summary>What one batch of a sweep at <paramref name="now"/> deletes.</summary>
    public static PurgeRequest Request(DateTimeOffset now, TimeSpan retention) => new(now, now - retention);

    /// <summary>
    /// The oldest-finished candidates one batch deletes: in order, while their ids fit in
    /// <see cref="IdsPerBatch"/>, and always the first, however large.
    /// </summary>
    public static IReadOnlyList<T> WithinBudget<T>(IReadOnlyList<T> candidates, Func<T, int> ids)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(ids);
        var taken = new List<T>();
        long budget = IdsPerBatch;
        foreach (var candidate in candidates)
        {
            budget -= ids(candidate);
            if (taken.Count > 0 && budget < 0)
            {
                break;
            }

            taken.Add(candidate);
        }

        return taken;
    }
}

/// <summary>One batch of a sweep: ingestions finished before <paramref name="FinishedBefore"/> (and windows started before it) go, and idempotency keys expired at <paramref name="Now"/>.</summary>
public readonly record struct PurgeRequest(DateTimeOffset Now, DateTimeOffset FinishedBefore);

/// <summary>
/// What one batch deleted, and whether more is due (<see cref="More"/>: the sweep goes on at once);
/// <see cref="Busy"/> when another instance is sweeping the shared store (this one deleted nothing).
/// </summary>
public readonly record struct PurgeResult(int Ingestions, long Results, int Windows, int Keys, bool More, bool Busy = false, int Events = 0)
{
    public static PurgeResult None => new(0, 0, 0, 0, More: false);

    public static PurgeResult OtherInstanceSweeping => None with { Busy = true };

    /// <summary>
    /// What a batch that looked at <paramref name="candidates"/> finished ingestions deleted; more is due when
    /// the id budget left some of them, or any of its four selections came back full. <paramref name="events"/>
    /// are webhook events delivered (or given up) before the retention, with their attempts.
    /// </summary>
    public static PurgeResult Of(int candidates, int ingestions, long results, int windows, int keys, int events) =>
        new(ingestions, results, windows, keys,
            More: ingestions < candidates || candidates == Retention.RowsPerBatch || windows == Retention.RowsPerBatch || keys == Retention.RowsPerBatch || events == Retention.RowsPerBatch,
            Events: events);

    /// <summary>The deletions of two batches together; busy when the later one was.</summary>
    public static PurgeResult operator +(PurgeResult earlier, PurgeResult later) =>
        new(earlier.Ingestions + later.Ingestions, earlier.Results + later.Results, earlier.Windows + later.Windows, earlier.Keys + later.Keys, later.More, later.Busy,
            earlier.Events + later.Events);

    public long Rows => Ingestions + Results + Windows + Keys + Events;
}
