using System.Text.Json;
using System.Text.Json.Serialization;
using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Events;

/// <summary>
/// The events of <c>GET /events</c>, each with its JSON data, published to the <see cref="EventHub"/>:
/// what the dispatcher and an operator did here (and so told to the other instances), and the queue's
/// depth as this instance samples it (each instance samples the same shared queue: not told).
/// </summary>
public sealed class ServiceEvents(EventHub hub)
{
    public const string WindowStarted = "window.started";
    public const string WindowFinished = "window.finished";
    public const string QueueDepthChanged = "queue.depth";
    public const string QueuePaused = "queue.paused";
    public const string QueueResumed = "queue.resumed";
    public const string LimitsChanged = "limits.changed";
    public const string IngestionCancelled = "ingestion.cancelled";
    public const string IngestionMoved = "ingestion.moved";

    private QueueDepth? _lastDepth;

    public void Started(ClaimedWindow window)
    {
        ArgumentNullException.ThrowIfNull(window);
        var parts = window.Items
            .GroupBy(item => (item.IngestionId, item.Priority))
            .Select(group => new WindowPart(group.Key.IngestionId, group.Key.Priority, group.Min(item => item.Position), group.Count()))
            .ToList();
        Publish(WindowStarted, new WindowStartedData(window.Seq, window.StartedAt.UtcDateTime, window.Items.Count, parts), EventsJson.Default.WindowStartedData);
    }

    /// <summary>A window whose answers were stored (<paramref name="outcome"/>), or, without one, handed back to the queue.</summary>
    public void Finished(ClaimedWindow window, WindowOutcome? outcome, DateTimeOffset finishedAt, DateTimeOffset? pausedUntil)
    {
        ArgumentNullException.ThrowIfNull(window);
        int Count(FetchState state) => outcome?.Fetches.Count(fetch => fetch.State == state) ?? 0;
        Publish(WindowFinished, new WindowFinishedData(window.Seq, window.StartedAt.UtcDateTime, finishedAt.UtcDateTime, outcome is null ? "abandoned" : "completed",
            Count(FetchState.Succeeded), Count(FetchState.Retrying), Count(FetchState.Failed), pausedUntil?.UtcDateTime,
            [.. window.Items.Select(item => item.IngestionId).Distinct()]), EventsJson.Default.WindowFinishedData);
    }

    public void Paused(QueuePause pause)
    {
        ArgumentNullException.ThrowIfNull(pause);
        Publish(QueuePaused, new QueuePausedData(pause.PausedAt.UtcDateTime, pause.Reason), EventsJson.Default.QueuePausedData);
    }

    public void Resumed(DateTimeOffset at) => Publish(QueueResumed, new QueueResumedData(at.UtcDateTime), EventsJson.Default.QueueResumedData);

    public void LimitChanged(LimitChange change, Scheduling.RateLimit inForce)
    {
        ArgumentNullException.ThrowIfNull(change);
        ArgumentNullException.ThrowIfNull(inForce);
        Publish(LimitsChanged, new LimitsChangedData(inForce.BatchSize, inForce.Window.TotalSeconds, change.Limit is null ? "configuration" : "override", change.ChangedAt.UtcDateTime),
            EventsJson.Default.LimitsChangedData);
    }

    public void Cancelled(Guid ingestionId) => Publish(IngestionCancelled, new IngestionChangedData(ingestionId, null), EventsJson.Default.IngestionChangedData);

    public void Moved(Guid ingestionId, Priority priority) => Publish(IngestionMoved, new IngestionChangedData(ingestionId, priority), EventsJson.Default.IngestionChangedData);

    /// <summary>The depth as sampled now; an event only when it changed since the last sample.</summary>
    public void Depth(QueueDepth depth)
    {
        if (_lastDepth == depth)
        {
            return;
        }

        _lastDepth = depth;
        hub.Publish(QueueDepthChanged, DepthData(depth), share: false);
    }

    /// <summary>The data of a <see cref="QueueDepthChanged"/> event, also the first event of a new stream.</summary>
    public static string DepthData(QueueDepth depth) =>
        JsonSerializer.Serialize(new QueueDepthData(depth.High, depth.Medium, depth.Low, depth.Total), EventsJson.Default.QueueDepthData);

    private void Publish<T>(string type, T data, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info) =>
        hub.Publish(type, JsonSerializer.Serialize(data, info), share: true);
}

/// <summary>The ids a window took from one ingestion: <see cref="Count"/> of them, from <see cref="FirstPosition"/>.</summary>
public sealed record WindowPart(Guid IngestionId, Priority Priority, int FirstPosition, int Count);

public sealed record WindowStartedData(long Seq, DateTime StartedAt, int Ids, IReadOnlyList<WindowPart> Items);

/// <summary><see cref="State"/> is completed (its answers stored) or abandoned (its ids back in the queue); <see cref="UpstreamPausedUntil"/> when its answers paused the upstream; <see cref="Ingestions"/> whose ids it took.</summary>
public sealed record WindowFinishedData(long Seq, DateTime StartedAt, DateTime FinishedAt, string State, int Succeeded, int Retrying, int Failed,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] DateTime? UpstreamPausedUntil, IReadOnlyList<Guid> Ingestions);

public sealed record QueueDepthData(long High, long Medium, long Low, long Total);

public sealed record QueuePausedData(DateTime PausedAt, string? Reason);

public sealed record QueueResumedData(DateTime ResumedAt);

public sealed record LimitsChangedData(int BatchSize, double WindowSeconds, string Source, DateTime ChangedAt);

public sealed record IngestionChangedData(Guid IngestionId, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Priority? Priority);

/// <summary>A batch of <c>GET /ingestions/{id}/events</c>, and the ingestion's counts at that moment.</summary>
public sealed record BatchEventData(Guid IngestionId, int Batch, Guid BatchId, int[] Ids, ProgressStatus Status, DateTime At,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int FailedIds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)] int CancelledIds,
    ProgressStatus IngestionStatus, int StartedIds, int CompletedIds);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, Converters = [typeof(UtcMillisecondsConverter)])]
[JsonSerializable(typeof(WindowStartedData))]
[JsonSerializable(typeof(WindowFinishedData))]
[JsonSerializable(typeof(QueueDepthData))]
[JsonSerializable(typeof(QueuePausedData))]
[JsonSerializable(typeof(QueueResumedData))]
[JsonSerializable(typeof(LimitsChangedData))]
[JsonSerializable(typeof(IngestionChangedData))]
[JsonSerializable(typeof(BatchEventData))]
internal sealed partial class EventsJson : JsonSerializerContext;
