namespace IngestionService.Storage;

/// <summary>
/// The webhook outbox. Events are written by the store itself, in the transaction that makes an
/// ingestion final (see the schemas' <c>010_webhooks.sql</c>); this is how they are delivered. Every
/// operation is one transaction; times compared are the store's (the database's on a shared store).
/// </summary>
public interface IOutboxStore
{
    /// <summary>
    /// Takes up to <paramref name="max"/> pending events whose next attempt is due, oldest first, and leases
    /// them for <paramref name="lease"/>: no other process takes them until the lease runs out, so one
    /// instance delivers each event, and an event whose instance died mid-attempt is due again afterwards.
    /// </summary>
    Task<IReadOnlyList<OutboxEvent>> TakeDueAsync(int max, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Stores an attempt and what becomes of the event (<paramref name="outcome"/>), and ends its lease.</summary>
    Task RecordAttemptAsync(OutboxEvent outboxEvent, DeliveryAttempt attempt, DeliveryNext outcome, CancellationToken cancellationToken);

    /// <summary>How long until the first pending event is due (zero if one is); null when none is pending.</summary>
    Task<TimeSpan?> NextDueInAsync(CancellationToken cancellationToken);

    /// <summary>An ingestion's callback and its events' deliveries; null for an unknown ingestion with no events kept.</summary>
    Task<IngestionDeliveries?> ReadDeliveriesAsync(Guid ingestionId, CancellationToken cancellationToken);
}
