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
}

/// <summary>
/// The answer of <c>GET /status/{ingestion_id}</c>. <see cref="CompletedIds"/> counts ids with a final
/// result, <see cref="FailedIds"/> of them a failure (HTTP upstream only). <see cref="UpstreamPausedUntil"/>
/// appears only while the upstream has asked for a pause (429 / Retry-After): no window starts before it.
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
    IReadOnlyList<BatchStatus> Batches);

/// <summary>
/// One batch: the request's ids in order, chunked by the batch size. A batch still waiting also says
/// when it is expected to start. A completed batch has a final result for every id; <see cref="FailedIds"/>
/// (present only when not zero) says how many of them are failures.
/// </summary>
public sealed record BatchStatus(
    Guid BatchId,
    int[] Ids,
    ProgressStatus Status,
    DateTime? TriggeredAt,
    DateTime? CompletedAt,
    DateTime? EstimatedStartAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int FailedIds = 0);

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
                progress.FailedOf(batch));
        }

        return new IngestionStatus(
            snapshot.Id, progress.Overall, snapshot.Priority, snapshot.CreatedAt.UtcDateTime, ids.Length, snapshot.Started, snapshot.Completed,
            snapshot.Failed.Count, progress.IdsAhead, progress.PausedUntil?.UtcDateTime, batches);
    }

    /// <summary>Each batch's status and times, and the overall status, without building a record per batch.</summary>
    public static BatchProgress Derive(IngestionSnapshot snapshot, WaitEstimate? estimate = null)
    {
        var ids = snapshot.Ids;
        var size = snapshot.BatchSize;
        var progress = new BatchProgress((ids.Length + size - 1) / size, snapshot, estimate);
        if (snapshot.Started == 0)
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

        var allCompleted = true;
        for (var batch = 0; batch < progress.Count; batch++)
        {
            var first = batch * size;
            var end = Math.Min(first + size, ids.Length);
            var status = snapshot.Started <= first ? ProgressStatus.YetToStart
                : snapshot.Started < end || outstanding[batch] ? ProgressStatus.Triggered
                : ProgressStatus.Completed;
            allCompleted &= status == ProgressStatus.Completed;
            progress.Status[batch] = status;
            progress.TriggeredAt[batch] = status == ProgressStatus.YetToStart ? null : triggeredAt[batch]?.UtcDateTime;
            progress.CompletedAt[batch] = status == ProgressStatus.Completed ? completedAt[batch]?.UtcDateTime : null;
        }

        progress.Overall = allCompleted ? ProgressStatus.Completed : ProgressStatus.Triggered;
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

    /// <summary>The upstream's pause, while it holds back work of this ingestion: null once the ingestion has completed.</summary>
    public DateTimeOffset? PausedUntil => Overall == ProgressStatus.Completed ? null : _snapshot.PausedUntil;

    /// <summary>Ids waiting ahead of the first unstarted id; null once every id has started.</summary>
    public long? IdsAhead => _snapshot.Started < _snapshot.Ids.Length ? _snapshot.IdsAhead : null;

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

    /// <summary>When a waiting batch's first id is expected to start; null for a batch that has started.</summary>
    public DateTime? EstimatedStartOf(int batch) =>
        _estimate is { } estimate && StatusOf(batch) == ProgressStatus.YetToStart
            ? estimate.StartOf(_snapshot.IdsAhead + ((long)batch * _snapshot.BatchSize) - _snapshot.Started)
            : null;
}
