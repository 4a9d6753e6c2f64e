using System.Text.Json.Serialization;
using IngestionService.Storage;

namespace IngestionService.Ingest;

/// <summary>The status of a batch or of a whole ingestion, as the brief names them.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ProgressStatus>))]
public enum ProgressStatus
{
    [JsonStringEnumMemberName("yet_to_start")]
    YetToStart,

    [JsonStringEnumMemberName("triggered")]
    Triggered,

    [JsonStringEnumMemberName("completed")]
    Completed,

    /// <summary>Nothing of it waits or runs, and ids of it were cancelled (or expired) before they started.</summary>
    [JsonStringEnumMemberName("cancelled")]
    Cancelled,
}

public static class ProgressStatusNames
{
    public const string Allowed = "yet_to_start, triggered, completed, cancelled";

    /// <summary>Parses the wire name, as status answers spell it. Case-sensitive, as the contract's enum is.</summary>
    public static bool TryParseWire(ReadOnlySpan<char> text, out ProgressStatus status)
    {
        switch (text)
        {
            case "yet_to_start": status = ProgressStatus.YetToStart; return true;
            case "triggered": status = ProgressStatus.Triggered; return true;
            case "completed": status = ProgressStatus.Completed; return true;
            case "cancelled": status = ProgressStatus.Cancelled; return true;
            default: status = default; return false;
        }
    }
}

/// <summary>
/// The answer of <c>GET /status/{ingestion_id}</c>. <see cref="CompletedIds"/> counts ids with a final
/// result, <see cref="FailedIds"/> of them a failure (HTTP upstream only). <see cref="UpstreamPausedUntil"/>
/// appears only while the upstream has asked for a pause (429 / Retry-After): no window starts before it.
/// <see cref="QueuePaused"/> appears (true) only while an operator has paused the queue; the waiting
/// batches then have no estimate, since no clock says when it resumes. <see cref="NotAfter"/> appears when
/// the request set one, and the three cancel fields once its unstarted ids were cancelled or expired.
/// </summary>
public sealed record IngestionStatus(
    Guid IngestionId,
    ProgressStatus Status,
    Priority Priority,
    DateTime CreatedAt,
    int TotalIds,
    int StartedIds,
    int CompletedIds,
    int FailedIds,
    long? IdsAhead,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTime? UpstreamPausedUntil,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] bool QueuePaused,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTime? NotAfter,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? CancelledIds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTime? CancelledAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] CancelReason? CancelReason,
    IReadOnlyList<BatchStatus> Batches);

/// <summary>
/// One batch: the request's ids in order, chunked by the batch size. A batch still waiting also says
/// when it is expected to start. A completed batch has a final result for every id; <see cref="FailedIds"/>
/// (present only when not zero) says how many of them are failures, <see cref="CancelledIds"/> how many
/// were cancelled before they started (a batch all of whose ids were is <c>cancelled</c>).
/// </summary>
public sealed record BatchStatus(
    Guid BatchId,
    int[] Ids,
    ProgressStatus Status,
    DateTime? TriggeredAt,
    DateTime? CompletedAt,
    DateTime? EstimatedStartAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int FailedIds = 0,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int CancelledIds = 0);

/// <summary>
/// What the dispatcher knows about the future: when it may admit its next window, how far apart windows
/// are and how many ids each takes. The rate is the bottleneck, so while no higher-priority work arrives
/// the estimate is exact: every window ahead is full.
/// </summary>
public readonly record struct WaitEstimate(DateTimeOffset NextAdmission, TimeSpan Window, int WindowSize)
{
    /// <summary>When the id that has <paramref name="idsAhead"/> ids waiting before it will start.</summary>
    public DateTime StartOf(long idsAhead) => (NextAdmission + (Window * (idsAhead / WindowSize))).UtcDateTime;
}

/// <summary>
/// Derives per-batch states and times from an ingestion's counters and its window spans. Nothing here is
/// stored per batch: a batch is triggered once its first position was taken by a window, and completed
/// once every position of it was started and none is still running or waiting to be fetched again (so
/// every id has a final result: the data, or a failure counted in <see cref="BatchStatus.FailedIds"/>).
/// Both only ever move forward, so statuses never go backwards.
/// </summary>
public static class StatusReport
{
    /// <summary>
    /// The overall status, the brief's rule: nothing started is yet_to_start, every id with a final result
    /// is completed, anything else is triggered; and once nothing waits or runs, cancelled if ids were cancelled.
    /// </summary>
    public static ProgressStatus Overall(bool anyStarted, bool allFinal, bool anyCancelled = false) =>
        anyCancelled && allFinal ? ProgressStatus.Cancelled
        : !anyStarted ? ProgressStatus.YetToStart : allFinal ? ProgressStatus.Completed : ProgressStatus.Triggered;

    /// <summary>The overall status from an ingestion's counters (what the list of ingestions shows).</summary>
    public static ProgressStatus Overall(IngestionSummary ingestion)
    {
        ArgumentNullException.ThrowIfNull(ingestion);
        return Overall(ingestion.Started > 0, ingestion.Completed >= ingestion.Total - ingestion.Cancelled, ingestion.Cancelled > 0);
    }

    /// <summary>The upstream's pause, shown only while it still holds windows back.</summary>
    public static DateTimeOffset? PauseShown(DateTimeOffset? pausedUntil, DateTimeOffset now) => pausedUntil > now ? pausedUntil : null;

    /// <summary>
    /// What a status read shows beyond the stored snapshot: the pause while it lasts, and when waiting
    /// batches should start (no estimate while the queue is paused). The dispatcher moves its bound once
    /// a claimed window's calls are on their way; a read in between already sees the window, so the
    /// window's own start bounds the next one too.
    /// </summary>
    public static (IngestionSnapshot Snapshot, WaitEstimate? Estimate) Live(IngestionSnapshot snapshot, DateTimeOffset now, DateTimeOffset nextAdmission, Scheduling.RateLimit limit)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(limit);
        var window = limit.Window;
        if (PauseShown(snapshot.PausedUntil, now) != snapshot.PausedUntil)
        {
            snapshot = snapshot with { PausedUntil = null };
        }

        if (snapshot.QueuePaused)
        {
            return (snapshot, null);
        }

        var next = nextAdmission;
        if (snapshot.Waiting)
        {
            foreach (var span in snapshot.Spans)
            {
                if (span.StartedAt + window > next)
                {
                    next = span.StartedAt + window;
                }
            }
        }

        return (snapshot, new WaitEstimate(next > now ? next : now, window, limit.BatchSize));
    }

    /// <summary>The status answer as records: the documented shape, for OpenAPI and for tests.</summary>
    public static IngestionStatus Build(IngestionSnapshot snapshot, WaitEstimate? estimate = null)
    {
        var progress = Derive(snapshot, estimate);
        var ids = snapshot.Ids;
        var size = snapshot.BatchSize;
        var batchIds = BatchIds.Of(snapshot.Id);
        var batches = new BatchStatus[progress.Count];
        for (var batch = 0; batch < batches.Length; batch++)
        {
            var first = batch * size;
            batches[batch] = new BatchStatus(
                batchIds.For(batch),
                ids[first..Math.Min(first + size, ids.Length)],
                progress.StatusOf(batch),
                progress.TriggeredAtOf(batch),
                progress.CompletedAtOf(batch),
                progress.EstimatedStartOf(batch),
                progress.FailedOf(batch),
                progress.CancelledOf(batch));
        }

        var cancel = snapshot.Cancel;
        return new IngestionStatus(
            snapshot.Id, progress.Overall, snapshot.Priority, snapshot.CreatedAt.UtcDateTime, ids.Length, snapshot.Started, snapshot.Completed,
            snapshot.Failed.Count, progress.IdsAhead, progress.PausedUntil?.UtcDateTime, progress.QueuePaused,
            snapshot.NotAfter?.UtcDateTime, cancel is null ? null : snapshot.CancelledIds, cancel?.At.UtcDateTime, cancel?.Reason, batches);
    }

    /// <summary>Each batch's status and times, and the overall status, without building a record per batch.</summary>
    public static BatchProgress Derive(IngestionSnapshot snapshot, WaitEstimate? estimate = null)
    {
        var ids = snapshot.Ids;
        var size = snapshot.BatchSize;
        var progress = new BatchProgress((ids.Length + size - 1) / size, snapshot, estimate);
        if (snapshot.Started == 0 && snapshot.Cancel is null)
        {
            return progress; // all yet_to_start, no times: the usual answer for work still waiting
        }

        var triggeredAt = new DateTimeOffset?[progress.Count];
        var completedAt = new DateTimeOffset?[progress.Count];
        var outstanding = new bool[progress.Count];
        foreach (var position in snapshot.Requeued)
        {
            outstanding[position / size] = true;
        }

        foreach (var span in snapshot.Spans)
        {
            var last = span.FirstPosition + span.Count - 1;
            for (var batch = span.FirstPosition / size; batch <= last / size; batch++)
            {
                var first = batch * size;
                if (span.FirstPosition <= first && first <= last && (triggeredAt[batch] is not { } t || span.StartedAt < t))
                {
                    triggeredAt[batch] = span.StartedAt;
                }

                switch (span.State)
                {
                    case WindowState.Running:
                        outstanding[batch] = true;
                        break;
                    case WindowState.Completed when completedAt[batch] is not { } c || span.FinishedAt > c:
                        completedAt[batch] = span.FinishedAt;
                        break;
                }
            }
        }

        // Cancelled ids are the tail from `cancelledFrom`: a batch wholly in it is cancelled, one that
        // straddles it is done once its started ids are.
        var cancelledFrom = snapshot.Cancel?.From ?? ids.Length;
        var allCompleted = true;
        for (var batch = 0; batch < progress.Count; batch++)
        {
            var first = batch * size;
            var end = Math.Min(Math.Min(first + size, ids.Length), cancelledFrom);
            var status = first >= cancelledFrom ? ProgressStatus.Cancelled
                : snapshot.Started <= first ? ProgressStatus.YetToStart
                : snapshot.Started < end || outstanding[batch] ? ProgressStatus.Triggered
                : ProgressStatus.Completed;
            allCompleted &= status is ProgressStatus.Completed or ProgressStatus.Cancelled;
            progress.Status[batch] = status;
            progress.TriggeredAt[batch] = status is ProgressStatus.YetToStart or ProgressStatus.Cancelled ? null : triggeredAt[batch]?.UtcDateTime;
            progress.CompletedAt[batch] = status == ProgressStatus.Completed ? completedAt[batch]?.UtcDateTime : null;
        }

        progress.Overall = Overall(anyStarted: snapshot.Started > 0, allCompleted, anyCancelled: snapshot.Cancel is not null);
        return progress;
    }
}

/// <summary>Per batch: its status and times (indexed by batch number); and the ingestion's overall status.</summary>
/// <remarks>Nothing is allocated per batch while nothing has started, the usual case for a long backlog.</remarks>
public sealed class BatchProgress
{
    private readonly IngestionSnapshot _snapshot;
    private readonly WaitEstimate? _estimate;
    private ProgressStatus[]? _status;
    private DateTime?[]? _triggeredAt;
    private DateTime?[]? _completedAt;
    private int[]? _failed;

    internal BatchProgress(int count, IngestionSnapshot snapshot, WaitEstimate? estimate)
    {
        Count = count;
        _snapshot = snapshot;
        _estimate = estimate;
    }

    public int Count { get; }

    public ProgressStatus Overall { get; internal set; }

    /// <summary>Whether nothing of the ingestion waits or runs any more.</summary>
    public bool Finished => Overall is ProgressStatus.Completed or ProgressStatus.Cancelled;

    /// <summary>The upstream's pause, while it holds back work of this ingestion: null once the ingestion has finished.</summary>
    public DateTimeOffset? PausedUntil => Finished ? null : _snapshot.PausedUntil;

    /// <summary>Whether an operator's pause holds back work of this ingestion: false once it has finished.</summary>
    public bool QueuePaused => !Finished && _snapshot.QueuePaused;

    /// <summary>Ids waiting ahead of the first unstarted id; null once every id has started or the rest was cancelled.</summary>
    public long? IdsAhead => _snapshot.Waiting ? _snapshot.IdsAhead : null;

    internal ProgressStatus[] Status => _status ??= new ProgressStatus[Count];

    internal DateTime?[] TriggeredAt => _triggeredAt ??= new DateTime?[Count];

    internal DateTime?[] CompletedAt => _completedAt ??= new DateTime?[Count];

    public ProgressStatus StatusOf(int batch) => _status?[batch] ?? ProgressStatus.YetToStart;

    public DateTime? TriggeredAtOf(int batch) => _triggeredAt?[batch];

    public DateTime? CompletedAtOf(int batch) => _completedAt?[batch];

    /// <summary>How many ids of a batch failed for good.</summary>
    public int FailedOf(int batch)
    {
        if (_snapshot.Failed.Count == 0)
        {
            return 0;
        }

        if (_failed is null)
        {
            _failed = new int[Count];
            foreach (var position in _snapshot.Failed)
            {
                _failed[position / _snapshot.BatchSize]++;
            }
        }

        return _failed[batch];
    }

    /// <summary>How many ids of a batch were cancelled before they started (the part of it in the cancelled tail).</summary>
    public int CancelledOf(int batch)
    {
        if (_snapshot.Cancel is not { } cancel)
        {
            return 0;
        }

        var first = batch * _snapshot.BatchSize;
        var end = Math.Min(first + _snapshot.BatchSize, _snapshot.Ids.Length);
        return Math.Max(0, end - Math.Max(first, cancel.From));
    }

    /// <summary>When a waiting batch's first id is expected to start; null for a batch that has started.</summary>
    public DateTime? EstimatedStartOf(int batch) =>
        _estimate is { } estimate && StatusOf(batch) == ProgressStatus.YetToStart
            ? estimate.StartOf(_snapshot.IdsAhead + ((long)batch * _snapshot.BatchSize) - _snapshot.Started)
            : null;
}
