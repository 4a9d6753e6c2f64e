using IngestionService.Ingest;

namespace IngestionService.Storage;

/// <summary>Where an event's delivery stands; the numbers are stored.</summary>
[System.Text.Json.Serialization.JsonConverter(typeof(System.Text.Json.Serialization.JsonStringEnumConverter<DeliveryState>))]
public enum DeliveryState
{
    /// <summary>Not delivered yet: the next attempt is due at its time.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("pending")]
    Pending = 0,

    /// <summary>The callback answered 2xx.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("delivered")]
    Delivered = 1,

    /// <summary>No 2xx within Notifications:MaxAge of the event.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("given_up")]
    GivenUp = 2,

    /// <summary>The callback answered 410 Gone: it wants no more.</summary>
    [System.Text.Json.Serialization.JsonStringEnumMemberName("stopped")]
    Stopped = 3,
}

/// <summary>
/// An event of the outbox, written in the transaction that made its ingestion final, with every field of
/// its payload. <see cref="Age"/> is on the store's clock: how long ago the ingestion finished;
/// <see cref="TraceParent"/> the submission's trace context, when it was traced.
/// </summary>
public sealed record OutboxEvent(
    long Seq,
    Guid IngestionId,
    Uri CallbackUrl,
    string StatusUrl,
    Priority Priority,
    DateTimeOffset CreatedAt,
    DateTimeOffset FinishedAt,
    int Total,
    int Completed,
    int Failed,
    int Cancelled,
    int Attempts,
    TimeSpan Age,
    string? TraceParent = null)
{
    /// <summary>The <c>webhook-id</c>: the same for every attempt, before and after a restart, on any instance.</summary>
    public string MessageId => MessageIdOf(IngestionId);

    /// <summary>An ingestion has one event at most (it becomes final once), so its id names the event.</summary>
    public static string MessageIdOf(Guid ingestionId) => $"msg_{ingestionId:N}";
}

/// <summary>One attempt: when it started, how long it took, and the HTTP status or, when no answer came, the error.</summary>
public sealed record DeliveryAttempt(DateTimeOffset At, TimeSpan Duration, int? HttpStatus, string? Error);

/// <summary>What becomes of an event after an attempt: <see cref="State"/>, and while pending, the wait before the next attempt.</summary>
public readonly record struct DeliveryNext(DeliveryState State, TimeSpan RetryIn);

/// <summary>An ingestion's callback and its events' deliveries, for <c>GET /ingestions/{id}/deliveries</c>.</summary>
public sealed record IngestionDeliveries(Guid IngestionId, string? CallbackUrl, IReadOnlyList<EventDeliveries> Events);

/// <summary>One event's delivery: its state, its attempts (oldest first), and when pending, the next attempt's time.</summary>
public sealed record EventDeliveries(
    string WebhookId,
    string Type,
    DeliveryState State,
    DateTime OccurredAt,
    DateTime? NextAttemptAt,
    DateTime? DoneAt,
    IReadOnlyList<AttemptView> Attempts);

/// <summary>An attempt as listed: when, how long, and the HTTP status or the error.</summary>
public sealed record AttemptView(
    int Attempt,
    DateTime At,
    long DurationMs,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] int? HttpStatus,
    [property: System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)] string? Error);
