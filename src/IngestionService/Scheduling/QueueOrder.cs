using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Scheduling;

/// <summary>
/// One id that waits, as a backend reads it for a claim: one handed back by an abandoned window or
/// waiting out a retry (<see cref="Requeued"/>, with its earlier calls counted), or one not started yet.
/// </summary>
public readonly record struct QueuedId(
    long IngestionSeq,
    Guid IngestionId,
    Priority Priority,
    DateTimeOffset CreatedAt,
    int Position,
    bool Requeued,
    int PriorAttempts = 0,
    int PriorThrottled = 0)
{
    /// <summary>The global order: priority, created time, arrival sequence, position.</summary>
    public static int InOrder(QueuedId a, QueuedId b)
    {
        var order = a.Priority.CompareTo(b.Priority);
        if (order == 0)
        {
            order = a.CreatedAt.CompareTo(b.CreatedAt);
        }

        if (order == 0)
        {
            order = a.IngestionSeq.CompareTo(b.IngestionSeq);
        }

        return order == 0 ? a.Position.CompareTo(b.Position) : order;
    }

    public WindowItem ToItem(int id) => new(IngestionSeq, IngestionId, Priority, Position, id, PriorAttempts, PriorThrottled);
}

/// <summary>
/// Which ids the next window takes. A backend reads two short lists in the global order, at most
/// <c>maxIds</c> each: the requeued ids (few, and ahead of their ingestion's unstarted ones) and the
/// unstarted ids of the first ingestions with any; the window takes the first <c>maxIds</c> of both.
/// </summary>
public static class QueueOrder
{
    /// <summary>Adds the unstarted positions of one ingestion, in order, while the list has room; false once it is full.</summary>
    public static bool AddUnstarted(List<QueuedId> unstarted, int maxIds, long seq, Guid ingestionId, Priority priority, DateTimeOffset createdAt, int started, int total)
    {
        for (var position = started; position < total && unstarted.Count < maxIds; position++)
        {
            unstarted.Add(new QueuedId(seq, ingestionId, priority, createdAt, position, Requeued: false));
        }

        return unstarted.Count < maxIds;
    }

    /// <summary>The window's ids: both lists merged in the global order, cut at <paramref name="maxIds"/>.</summary>
    public static WindowPlan Merge(List<QueuedId> requeued, List<QueuedId> unstarted, int maxIds)
    {
        var chosen = new List<QueuedId>(requeued.Count + unstarted.Count);
        chosen.AddRange(requeued);
        chosen.AddRange(unstarted);
        chosen.Sort(QueuedId.InOrder);
        if (chosen.Count > maxIds)
        {
            chosen.RemoveRange(maxIds, chosen.Count - maxIds);
        }

        return new WindowPlan(chosen);
    }
}

/// <summary>The ids a claim takes, in the global order, and what taking them changes in the queue.</summary>
public sealed class WindowPlan(IReadOnlyList<QueuedId> chosen)
{
    public IReadOnlyList<QueuedId> Chosen { get; } = chosen;

    public bool IsEmpty => Chosen.Count == 0;

    /// <summary>Per ingestion, how many of its unstarted ids start now: its <c>started</c> counter moves by that.</summary>
    public IReadOnlyList<(long IngestionSeq, int Count)> Advances { get; } =
        [.. chosen.Where(id => !id.Requeued).GroupBy(id => id.IngestionSeq).Select(group => (group.Key, group.Count()))];

    /// <summary>The requeued ids taken: they leave the requeued list.</summary>
    public IReadOnlyList<QueuedId> Unqueued { get; } = [.. chosen.Where(id => id.Requeued)];

    /// <summary>Runs of consecutive positions of one ingestion in the chosen order, as index ranges: each is one slice of its ids.</summary>
    public IReadOnlyList<Range> Slices => PositionRuns.Of(Chosen, static id => (id.IngestionSeq, id.Position));
}

/// <summary>Groups positions into runs of consecutive positions of one ingestion, the way the window log stores them.</summary>
public static class PositionRuns
{
    /// <summary>Index ranges of <paramref name="entries"/>, as they are ordered, where each next entry is the next position of the same ingestion.</summary>
    public static IReadOnlyList<Range> Of<T>(IReadOnlyList<T> entries, Func<T, (long IngestionSeq, int Position)> key)
    {
        var runs = new List<Range>();
        var start = 0;
        for (var i = 1; i <= entries.Count; i++)
        {
            if (i == entries.Count || key(entries[i]).IngestionSeq != key(entries[start]).IngestionSeq || key(entries[i]).Position != key(entries[i - 1]).Position + 1)
            {
                if (i > start)
                {
                    runs.Add(start..i);
                }

                start = i;
            }
        }

        return runs;
    }

    /// <summary>A window's items as the log stores them: by ingestion and position, one row per run.</summary>
    public static IReadOnlyList<(long IngestionSeq, int FirstPosition, int[] Ids)> OfWindow(IReadOnlyList<WindowItem> items) =>
        [.. IndexesOfWindow(items).Select(run => (run.IngestionSeq, run.FirstPosition, run.Indexes.Select(i => items[i].Id).ToArray()))];

    /// <summary>The runs of <see cref="OfWindow"/>, each as the indexes of its items in <paramref name="items"/>, in the run's order.</summary>
    public static IReadOnlyList<(long IngestionSeq, int FirstPosition, int[] Indexes)> IndexesOfWindow(IReadOnlyList<WindowItem> items)
    {
        ArgumentNullException.ThrowIfNull(items);
        var ordered = Enumerable.Range(0, items.Count).OrderBy(i => items[i].IngestionSeq).ThenBy(i => items[i].Position).ToList();
        return [.. Of(ordered, i => (items[i].IngestionSeq, items[i].Position))
            .Select(run => (items[ordered[run.Start]].IngestionSeq, items[ordered[run.Start]].Position, ordered[run].ToArray()))];
    }
}
