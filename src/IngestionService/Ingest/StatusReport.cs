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

/// <summary>The answer of <c>GET /status/{ingestion_id}</c>.</summary>
public sealed record IngestionStatus(
    Guid IngestionId,
    ProgressStatus Status,
    Priority Priority,
    DateTime CreatedAt,
    int TotalIds,
    int StartedIds,
    int CompletedIds,
    IReadOnlyList<BatchStatus> Batches);

/// <summary>One batch: the request's ids in order, chunked by the batch size.</summary>
public sealed record BatchStatus(Guid BatchId, int[] Ids, ProgressStatus Status, DateTime? TriggeredAt, DateTime? CompletedAt);

/// <summary>
/// Derives per-batch states and times from an ingestion's counters and its window spans. Nothing here is
/// stored per batch: a batch is triggered once its first position was taken by a window, and completed
/// once every position of it was started and none is still running or waiting to be fetched again.
/// Both only ever move forward, so statuses never go backwards.
/// </summary>
public static class StatusReport
{
    public static IngestionStatus Build(IngestionSnapshot snapshot)
    {
        var ids = snapshot.Ids;
        var size = snapshot.BatchSize;
        var batchCount = (ids.Length + size - 1) / size;
        var triggeredAt = new DateTimeOffset?[batchCount];
        var completedAt = new DateTimeOffset?[batchCount];
        var outstanding = new bool[batchCount];

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

        var batches = new BatchStatus[batchCount];
        var batchIds = BatchIds.Of(snapshot.Id);
        var allCompleted = true;
        for (var batch = 0; batch < batchCount; batch++)
        {
            var first = batch * size;
            var end = Math.Min(first + size, ids.Length);
            var status = snapshot.Started <= first ? ProgressStatus.YetToStart
                : snapshot.Started < end || outstanding[batch] ? ProgressStatus.Triggered
                : ProgressStatus.Completed;
            allCompleted &= status == ProgressStatus.Completed;
            batches[batch] = new BatchStatus(
                batchIds.For(batch),
                ids[first..end],
                status,
                status == ProgressStatus.YetToStart ? null : triggeredAt[batch]?.UtcDateTime,
                status == ProgressStatus.Completed ? completedAt[batch]?.UtcDateTime : null);
        }

        var overall = snapshot.Started == 0 ? ProgressStatus.YetToStart
            : allCompleted ? ProgressStatus.Completed
            : ProgressStatus.Triggered;
        return new IngestionStatus(snapshot.Id, overall, snapshot.Priority, snapshot.CreatedAt.UtcDateTime, ids.Length, snapshot.Started, snapshot.Completed, batches);
    }
}
