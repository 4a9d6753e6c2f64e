using System.Text.Json;
using System.Text.Json.Serialization;
using IngestionService.Hosting;
using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Notifications;

/// <summary>
/// The body of a delivery: <c>type</c>, <c>timestamp</c> (when the ingestion finished) and <c>data</c>,
/// the ingestion's summary (its counts and status URL, not its batches, which can be huge). Built from
/// the outbox row alone, so every attempt sends the same bytes.
/// </summary>
public sealed record WebhookPayload(string Type, DateTime Timestamp, WebhookIngestion Data)
{
    public const string Completed = "ingestion.completed";
    public const string Cancelled = "ingestion.cancelled";

    /// <summary>
    /// <see cref="Cancelled"/> when ids of it were cancelled or expired before they started, else
    /// <see cref="Completed"/>: the status's own rule (<see cref="StatusReport.Overall(bool, bool, bool)"/>).
    /// </summary>
    public static string TypeOf(int completed, int cancelled) => StatusOf(completed, cancelled) == ProgressStatus.Cancelled ? Cancelled : Completed;

    public static WebhookPayload For(OutboxEvent outboxEvent)
    {
        ArgumentNullException.ThrowIfNull(outboxEvent);
        var finished = outboxEvent.FinishedAt.UtcDateTime;
        return new WebhookPayload(TypeOf(outboxEvent.Completed, outboxEvent.Cancelled), finished, new WebhookIngestion(
            outboxEvent.IngestionId, StatusOf(outboxEvent.Completed, outboxEvent.Cancelled), outboxEvent.Priority, outboxEvent.CreatedAt.UtcDateTime, finished,
            outboxEvent.Total, outboxEvent.Completed, outboxEvent.Failed, outboxEvent.Cancelled, outboxEvent.StatusUrl));
    }

    public byte[] ToUtf8Json() => JsonSerializer.SerializeToUtf8Bytes(this, WebhookJsonContext.Default.WebhookPayload);

    private static ProgressStatus StatusOf(int completed, int cancelled) =>
        StatusReport.Overall(anyStarted: completed > 0, allFinal: true, anyCancelled: cancelled > 0);
}

/// <summary>
/// The ingestion, as an event tells of it: its id, status, priority, created and finished times, its ids
/// in all, those with a final result (the data, or a failure: failed ones are also counted apart), those
/// cancelled or expired before they started, and where its full status, batch by batch, is read.
/// </summary>
public sealed record WebhookIngestion(
    Guid IngestionId,
    ProgressStatus Status,
    Priority Priority,
    DateTime CreatedAt,
    DateTime FinishedAt,
    int TotalIds,
    int CompletedIds,
    int FailedIds,
    int CancelledIds,
    string StatusUrl);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, Converters = [typeof(UtcMillisecondsConverter)])]
[JsonSerializable(typeof(WebhookPayload))]
[JsonSerializable(typeof(IngestionDeliveries))]
internal sealed partial class WebhookJsonContext : JsonSerializerContext;
