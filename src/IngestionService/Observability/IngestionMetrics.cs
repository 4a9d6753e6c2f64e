using System.Diagnostics.Metrics;
using IngestionService.Ingest;
using IngestionService.Storage;

namespace IngestionService.Observability;

/// <summary>
/// The service's own instruments, named by OpenTelemetry's conventions (exported to Prometheus at
/// <c>/metrics</c> with dots as underscores and the unit as a suffix, e.g. <c>ingestion_wait_duration_seconds</c>).
/// </summary>
public sealed class IngestionMetrics
{
    public const string MeterName = "IngestionService";

    private readonly Meter _meter;
    private readonly Counter<long> _windowsStarted;
    private readonly Counter<long> _idsFetched;
    private readonly Counter<long> _idsFailed;
    private readonly Counter<long> _idsRetried;
    private readonly Counter<long> _pauses;
    private readonly UpDownCounter<long> _idsInFlight;
    private readonly Histogram<double> _waitDuration;
    private readonly Histogram<double> _upstreamDuration;

    public IngestionMetrics(IMeterFactory meterFactory, QueueMonitor monitor)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(monitor);
        _meter = meterFactory.Create(MeterName);
        _windowsStarted = _meter.CreateCounter<long>("ingestion.windows.started", "{window}", "Windows admitted by the rate limiter.");
        _idsFetched = _meter.CreateCounter<long>("ingestion.ids.fetched", "{id}", "Ids whose upstream answer was stored.");
        _idsFailed = _meter.CreateCounter<long>("ingestion.ids.failed", "{id}", "Ids recorded as failed for good (attempts exhausted or a permanent error).");
        _idsRetried = _meter.CreateCounter<long>("ingestion.ids.retried", "{id}", "Ids put back in the queue to be called again: a failed or throttled call, or a window cut off at shutdown.");
        _pauses = _meter.CreateCounter<long>("ingestion.upstream.pauses", "{pause}", "Windows whose calls the upstream refused for quota (429, or 503 with Retry-After), each pausing every window.");
        _meter.CreateObservableGauge("ingestion.upstream.pause_remaining", () => monitor.PauseRemainingSeconds, "s",
            "Seconds left of the pause the upstream asked for; no window starts before it ends.");
        _idsInFlight = _meter.CreateUpDownCounter<long>("ingestion.ids.in_flight", "{id}", "Upstream calls under way in this process.");
        _waitDuration = _meter.CreateHistogram(
            "ingestion.wait.duration", "s", "Time from submission to the start of an id's fetch.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.1, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400] });
        _upstreamDuration = _meter.CreateHistogram(
            "ingestion.upstream.duration", "s", "Time one upstream call took.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30] });
        _meter.CreateObservableGauge("ingestion.queue.waiting", () => Waiting(monitor.Depth), "{id}", "Ids waiting, by priority.");
        _meter.CreateObservableGauge("ingestion.limiter.max_ids_per_window", () => monitor.MaxIdsPerWindowSpan, "{id}",
            "The most ids started within any Window-long span of the window log: must never exceed BatchSize.");
    }

    /// <summary>Reports how long until the limiter admits the next window (zero when it would now).</summary>
    public void ObserveNextAdmission(Func<double> secondsUntilNextWindow) =>
        _meter.CreateObservableGauge("ingestion.limiter.next_admission", secondsUntilNextWindow, "s", "Seconds until the rate limiter admits the next window.");

    public void WindowStarted(ClaimedWindow window)
    {
        ArgumentNullException.ThrowIfNull(window);
        _windowsStarted.Add(1);
        foreach (var item in window.Items)
        {
            var waited = (window.StartedAt - IngestionIds.CreatedAt(item.IngestionId)).TotalSeconds;
            _waitDuration.Record(Math.Max(0, waited), new KeyValuePair<string, object?>("ingestion.priority", item.Priority.ToWire()));
        }
    }

    public void FetchStarted() => _idsInFlight.Add(1);

    public void FetchFinished(TimeSpan took)
    {
        _idsInFlight.Add(-1);
        _upstreamDuration.Record(took.TotalSeconds);
    }

    /// <summary>Counts a finished window's calls by what they came to.</summary>
    public void WindowFinished(WindowOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        int fetched = 0, retried = 0, failed = 0;
        foreach (var fetch in outcome.Fetches)
        {
            switch (fetch.State)
            {
                case FetchState.Succeeded: fetched++; break;
                case FetchState.Retrying: retried++; break;
                default: failed++; break;
            }
        }

        _idsFetched.Add(fetched);
        _idsRetried.Add(retried);
        _idsFailed.Add(failed);
        if (outcome.Pause is not null)
        {
            _pauses.Add(1);
        }
    }

    /// <summary>Ids of a window cut off at shutdown, handed back uncounted.</summary>
    public void IdsRequeued(int count) => _idsRetried.Add(count);

    private static IEnumerable<Measurement<long>> Waiting(QueueDepth depth)
    {
        foreach (var priority in new[] { Priority.High, Priority.Medium, Priority.Low })
        {
            yield return new Measurement<long>(depth.Of(priority), new KeyValuePair<string, object?>("ingestion.priority", priority.ToWire()));
        }
    }
}
