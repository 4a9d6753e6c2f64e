using System.Diagnostics.Metrics;
using IngestionService.Observability;
using IngestionService.Storage;

namespace IngestionService.Notifications;

/// <summary>Webhook attempts by what they came to, on the service's meter (<c>ingestion_webhook_attempts_total</c> at <c>/metrics</c>).</summary>
public sealed class WebhookMetrics
{
    private readonly long[] _attempts = new long[4];

    public WebhookMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        meterFactory.Create(IngestionMetrics.MeterName).CreateObservableCounter("ingestion.webhook.attempts", Observe, "{attempt}",
            "Webhook attempts by outcome: delivered (2xx), retried (to be tried again), given_up (Notifications:MaxAge passed), stopped (410 Gone).");
    }

    public void Attempted(DeliveryState outcome) => Interlocked.Increment(ref _attempts[(int)outcome]);

    private IEnumerable<Measurement<long>> Observe()
    {
        yield return new(Volatile.Read(ref _attempts[(int)DeliveryState.Delivered]), new KeyValuePair<string, object?>("outcome", "delivered"));
        yield return new(Volatile.Read(ref _attempts[(int)DeliveryState.Pending]), new KeyValuePair<string, object?>("outcome", "retried"));
        yield return new(Volatile.Read(ref _attempts[(int)DeliveryState.GivenUp]), new KeyValuePair<string, object?>("outcome", "given_up"));
        yield return new(Volatile.Read(ref _attempts[(int)DeliveryState.Stopped]), new KeyValuePair<string, object?>("outcome", "stopped"));
    }
}
