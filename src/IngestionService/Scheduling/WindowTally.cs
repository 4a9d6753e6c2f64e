using IngestionService.Storage;

namespace IngestionService.Scheduling;

/// <summary>
/// What a finished window changes, from its outcome and its finish as stored: succeeded and failed ids
/// are final and counted per ingestion; ids to retry go back to the queue, due after their delay; a
/// pause the upstream asked for holds every window back until it ends.
/// </summary>
public sealed class WindowTally
{
    private WindowTally(IReadOnlyList<(long, int, int)> progress, IReadOnlyList<int> retries, DateTimeOffset? pausedUntil, IReadOnlyList<(long, int, byte[])> marks)
    {
        Progress = progress;
        Retries = retries;
        PausedUntil = pausedUntil;
        Marks = marks;
    }

    /// <summary>Per ingestion: ids that reached a final result, and how many of them failed.</summary>
    public IReadOnlyList<(long IngestionSeq, int Completed, int Failed)> Progress { get; }

    /// <summary>Indexes of the items to call again.</summary>
    public IReadOnlyList<int> Retries { get; }

    /// <summary>The end of the pause, rounded up; null when the upstream asked for none.</summary>
    public DateTimeOffset? PausedUntil { get; }

    /// <summary>Per run of the window log (<see cref="PositionRuns.OfWindow"/>): what each of its calls came to, one <see cref="CallMark"/> byte per id.</summary>
    public IReadOnlyList<(long IngestionSeq, int FirstPosition, byte[] Marks)> Marks { get; }

    public static WindowTally Of(ClaimedWindow window, WindowOutcome outcome, DateTimeOffset finishedAt)
    {
        ArgumentNullException.ThrowIfNull(window);
        ArgumentNullException.ThrowIfNull(outcome);
        ArgumentOutOfRangeException.ThrowIfNotEqual(outcome.Fetches.Count, window.Items.Count);
        var fetches = outcome.Fetches;
        var progress = Enumerable.Range(0, fetches.Count)
            .Where(i => fetches[i].State != FetchState.Retrying)
            .GroupBy(i => window.Items[i].IngestionSeq)
            .Select(group => (group.Key, group.Count(), group.Count(i => fetches[i].State == FetchState.Failed)))
            .ToList();
        var retries = Enumerable.Range(0, fetches.Count).Where(i => fetches[i].State == FetchState.Retrying).ToList();
        var marks = PositionRuns.IndexesOfWindow(window.Items)
            .Select(run => (run.IngestionSeq, run.FirstPosition, run.Indexes.Select(i => (byte)MarkOf(window.Items[i], fetches[i])).ToArray()))
            .ToList();
        return new WindowTally(progress, retries, outcome.Pause is { } pause ? Milliseconds.Ceiling(finishedAt + pause) : null, marks);
    }

    /// <summary>What one call came to: a retry the upstream's quota caused is told apart from one the id's failure caused.</summary>
    public static CallMark MarkOf(WindowItem item, FetchOutcome fetch) => fetch.State switch
    {
        FetchState.Succeeded => CallMark.Succeeded,
        FetchState.Failed => CallMark.Failed,
        _ when fetch.Throttled > item.PriorThrottled => CallMark.Throttled,
        _ => CallMark.Retrying,
    };

    /// <summary>When a retrying id may be called again: its delay after the finish, rounded up; null for a final one.</summary>
    public static DateTimeOffset? NextAttemptAt(FetchOutcome fetch, DateTimeOffset finishedAt) =>
        fetch is { State: FetchState.Retrying, RetryAfter: { } delay } ? Milliseconds.Ceiling(finishedAt + delay) : null;

    /// <summary>From when a retrying id is eligible again: its next attempt, or at once without a delay.</summary>
    public static DateTimeOffset DueAt(FetchOutcome fetch, DateTimeOffset finishedAt) => NextAttemptAt(fetch, finishedAt) ?? finishedAt;
}
