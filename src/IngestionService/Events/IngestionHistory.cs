using System.Globalization;
using IngestionService.Ingest;

namespace IngestionService.Events;

/// <summary>A batch started (its first id was taken by a window) or completed (every id of it has a final result).</summary>
public sealed record BatchEvent(string Type, int Batch, BatchStatus Status, DateTime At);

/// <summary>
/// Where a stream of one ingestion stands: how many batch starts and how many batch completions it has
/// sent, or that it sent the end. Written as the SSE id (<c>3.1</c>, <c>done</c>), so a reconnecting
/// client's <c>Last-Event-ID</c> says exactly what it has seen.
/// </summary>
public readonly record struct StreamPosition(int Started, int Completed, bool Done = false)
{
    public override string ToString() => Done ? "done" : string.Create(CultureInfo.InvariantCulture, $"{Started}.{Completed}");

    public static bool TryParse(string? text, out StreamPosition position)
    {
        position = default;
        if (text == "done")
        {
            position = new StreamPosition(0, 0, Done: true);
            return true;
        }

        var dot = text?.IndexOf('.', StringComparison.Ordinal) ?? -1;
        if (dot <= 0 || !int.TryParse(text.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var started)
            || !int.TryParse(text.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var completed))
        {
            return false;
        }

        position = new StreamPosition(started, completed);
        return true;
    }
}

/// <summary>
/// The batch events of one ingestion, in one place, read off its status. Batches start in order (an
/// ingestion's ids are handed out in order), so the starts are the triggered batches by index; they
/// complete in the order their last results were stored (a retried id can hold an earlier batch back),
/// which is the order of their completion times, then of index. Both sequences only ever grow at their
/// end, so a count of each says what a client has seen, and nothing is skipped or sent twice on resume.
/// </summary>
public static class IngestionHistory
{
    public const string Started = "batch.started";
    public const string Completed = "batch.completed";

    public static IReadOnlyList<BatchEvent> Starts(IngestionStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        var starts = new List<BatchEvent>();
        for (var i = 0; i < status.Batches.Count && status.Batches[i].TriggeredAt is { } at; i++)
        {
            starts.Add(new BatchEvent(Started, i, status.Batches[i], at));
        }

        return starts;
    }

    public static IReadOnlyList<BatchEvent> Completions(IngestionStatus status)
    {
        ArgumentNullException.ThrowIfNull(status);
        return [.. status.Batches
            .Select((batch, i) => (batch, i))
            .Where(b => b.batch.Status == ProgressStatus.Completed && b.batch.CompletedAt is not null)
            .OrderBy(b => b.batch.CompletedAt).ThenBy(b => b.i)
            .Select(b => new BatchEvent(Completed, b.i, b.batch, b.batch.CompletedAt!.Value))];
    }

    /// <summary>Where a stream that has sent everything in <paramref name="status"/> stands.</summary>
    public static StreamPosition PositionOf(IngestionStatus status) => new(Starts(status).Count, Completions(status).Count);

    /// <summary>
    /// What a client at <paramref name="seen"/> has not seen, oldest first (starts and completions merged by
    /// time, a start before a completion at the same moment), and where it then stands.
    /// </summary>
    public static (IReadOnlyList<BatchEvent> Events, StreamPosition Position) Since(IngestionStatus status, StreamPosition seen)
    {
        var starts = Starts(status);
        var completions = Completions(status);
        var missed = starts.Skip(seen.Started).Concat(completions.Skip(seen.Completed))
            .OrderBy(e => e.At).ThenBy(e => e.Type == Started ? 0 : 1).ThenBy(e => e.Batch)
            .ToList();
        return (missed, new StreamPosition(Math.Max(seen.Started, starts.Count), Math.Max(seen.Completed, completions.Count)));
    }

    /// <summary>Whether <paramref name="position"/> could have come from a stream of this ingestion.</summary>
    public static bool IsReachable(IngestionStatus status, StreamPosition position)
    {
        ArgumentNullException.ThrowIfNull(status);
        return position.Done || (position.Started <= Starts(status).Count && position.Completed <= Completions(status).Count);
    }

    /// <summary>Nothing of it waits or runs any more: the stream's last event.</summary>
    public static bool IsFinal(IngestionStatus status) =>
        status?.Status is ProgressStatus.Completed or ProgressStatus.Cancelled;
}
