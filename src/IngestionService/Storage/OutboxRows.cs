using System.Data.Common;
using IngestionService.Notifications;

namespace IngestionService.Storage;

/// <summary>
/// Reads the rows both stores answer <c>GET /ingestions/{id}/deliveries</c> with, in one statement: first
/// (kind 0) the ingestion's callback, then (kind 1) one row per attempt of each event, by event and
/// attempt (an event not yet attempted has one row with a null attempt). Columns: kind, event seq, state,
/// occurred, next attempt, done, completed, cancelled, attempt, its time, its duration (ms), its HTTP
/// status, and the text (the callback for kind 0, the attempt's error for kind 1).
/// </summary>
internal static class OutboxRows
{
    public static async Task<IngestionDeliveries?> ReadDeliveriesAsync(Guid ingestionId, DbDataReader reader, Func<DbDataReader, int, DateTimeOffset> time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(time);
        var known = false;
        string? callback = null;
        var events = new List<EventDeliveries>();
        List<AttemptView>? attempts = null;
        long seq = -1;
        while (await reader.ReadAsync(cancellationToken))
        {
            if (reader.GetInt32(0) == 0)
            {
                (known, callback) = (true, reader.IsDBNull(12) ? null : reader.GetString(12));
                continue;
            }

            if (reader.GetInt64(1) != seq)
            {
                seq = reader.GetInt64(1);
                attempts = [];
                var state = (DeliveryState)reader.GetInt32(2);
                events.Add(new EventDeliveries(
                    OutboxEvent.MessageIdOf(ingestionId),
                    WebhookPayload.TypeOf(reader.GetInt32(6), reader.GetInt32(7)),
                    state,
                    time(reader, 3).UtcDateTime,
                    state == DeliveryState.Pending ? time(reader, 4).UtcDateTime : null,
                    reader.IsDBNull(5) ? null : time(reader, 5).UtcDateTime,
                    attempts));
            }

            if (!reader.IsDBNull(8))
            {
                attempts!.Add(new AttemptView(reader.GetInt32(8), time(reader, 9).UtcDateTime, reader.GetInt64(10),
                    reader.IsDBNull(11) ? null : reader.GetInt32(11), reader.IsDBNull(12) ? null : reader.GetString(12)));
            }
        }

        return known || events.Count > 0 ? new IngestionDeliveries(ingestionId, callback, events) : null;
    }
}
