using System.Globalization;
using System.Text;
using IngestionService.Ingest;

namespace IngestionService.Events;

/// <summary>A batch started (its first id was taken by a window) or completed (every id of it has a final result).</summary>
public sealed record BatchEvent(string Type, int Batch, BatchStatus Status, DateTime At);

/// <summary>
/// Where a stream of one ingestion stands: how many batches it has told started (they start in order),
/// which it has told completed (they need not complete in order), or that it sent the end. Written as the
/// SSE id: <c>3.0-1</c> (three started, batches 0 and 1 completed), <c>3.0,2-4</c>, <c>1.</c>, <c>done</c>;
/// so a reconnecting client's <c>Last-Event-ID</c> says exactly what it has seen.
/// </summary>
public sealed record StreamPosition(int Started, IReadOnlySet<int> Completed, bool Done = false)
{
    public static StreamPosition Nothing { get; } = new(0, new SortedSet<int>());

    public static StreamPosition End { get; } = Nothing with { Done = true };

    public StreamPosition With(BatchEvent told)
    {
        ArgumentNullException.ThrowIfNull(told);
        return told.Type == IngestionHistory.Started
            ? this with { Started = Math.Max(Started, told.Batch + 1) }
            : this with { Completed = new SortedSet<int>(Completed) { told.Batch } };
    }

    public override string ToString()
    {
        if (Done)
        {
            return "done";
        }

        var text = new StringBuilder().Append(Started.ToString(CultureInfo.InvariantCulture)).Append('.');
        var ordered = Completed.Order().ToList();
        for (var i = 0; i < ordered.Count;)
        {
            var from = ordered[i];
            while (i + 1 < ordered.Count && ordered[i + 1] == ordered[i] + 1)
            {
                i++;
            }

            text.Append(text[^1] == '.' ? "" : ",").Append(from.ToString(CultureInfo.InvariantCulture));
            if (ordered[i] != from)
            {
                text.Append('-').Append(ordered[i].ToString(CultureInfo.InvariantCulture));
            }

            i++;
        }

        return text.ToString();
    }

    public static bool TryParse(string? text, out StreamPosition position)
    {
        position = Nothing;
        if (text == "done")
        {
            position = End;
            return true;
        }

        var dot = text?.IndexOf('.', StringComparison.Ordinal) ?? -1;
        if (dot <= 0 || !int.TryParse(text.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var started))
        {
            return false;
        }

        var completed = new SortedSet<int>();
        var last = -1;
        foreach (var range in text![(dot + 1)..].Split(',', StringSplitOptions.None))
        {
            if (range.Length == 0 && dot + 1 == text.Length)
            {
                break; // none completed
            }

            var dash = range.IndexOf('-', StringComparison.Ordinal);
            if (!int.TryParse(dash < 0 ? range : range[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var from)
                || !int.TryParse(dash < 0 ? range : range[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var to)
                || from <= last || to < from || to - from > 1_000_000)
            {
                return false; // not as this stream writes them: ascending, apart, each from ≤ to
            }

            for (var batch = from; batch <= to; batch++)
            {
                completed.Add(batch);
            }

            last = to;
        }

        position = new StreamPosition(started, completed);
        return true;
    }
}

/// <summary>
/// The batch events of one ingestion, in one place, read off its status. Batches start in order (an
/// ingestion's ids are handed out in order), so the starts are the triggered batches by index, and a
/// count says which were told. Completions need not come in order (a retried id holds its batch back; a
/// cancel completes a batch whose last ids will never run), so the position keeps the set of batches told
/// completed, and each read tells the others, by completion time. Nothing is skipped or told twice.
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

    /// <summary>Where a stream that has told everything in <paramref name="status"/> stands.</summary>
    public static StreamPosition PositionOf(IngestionStatus status) =>
        new(Starts(status).Count, new SortedSet<int>(Completions(status).Select(e => e.Batch)));

    /// <summary>
    /// What a client at <paramref name="seen"/> has not been told, oldest first (starts and completions merged
    /// by time). Times are whole milliseconds, so a window can start in the millisecond the one before it
    /// finished: at the same moment the earlier batch goes first, and a batch's start before its completion.
    /// </summary>
    public static IReadOnlyList<BatchEvent> Since(IngestionStatus status, StreamPosition seen)
    {
        ArgumentNullException.ThrowIfNull(seen);
        return [.. Starts(status).Skip(seen.Started)
            .Concat(Completions(status).Where(e => !seen.Completed.Contains(e.Batch)))
            .OrderBy(e => e.At).ThenBy(e => e.Batch).ThenBy(e => e.Type == Started ? 0 : 1)];
    }

    /// <summary>Whether <paramref name="position"/> could have come from a stream of this ingestion (statuses never go back).</summary>
    public static bool IsReachable(IngestionStatus status, StreamPosition position)
    {
        ArgumentNullException.ThrowIfNull(status);
        ArgumentNullException.ThrowIfNull(position);
        if (position.Done)
        {
            return true;
        }

        var completed = Completions(status).Select(e => e.Batch).ToHashSet();
        return position.Started <= Starts(status).Count && position.Completed.All(completed.Contains);
    }

    /// <summary>Nothing of it waits or runs any more: the stream's last event.</summary>
    public static bool IsFinal(IngestionStatus status) =>
        status?.Status is ProgressStatus.Completed or ProgressStatus.Cancelled;
}
