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
    // Totals kept here and observed, so every counter is exported from the start, at zero until it moves.
    private long _windowsStarted;
    private long _idsFetched;
    private long _idsFailed;
    private long _idsRetried;
    private long _pauses;
    private long _cancelledRequested;
    private long _cancelledExpired;
    private readonly long[] _purged = new long[5];
    private readonly UpDownCounter<long> _idsInFlight;
    private readonly Histogram<double> _waitDuration;
    private readonly Histogram<double> _upstreamDuration;

    public IngestionMetrics(IMeterFactory meterFactory, QueueMonitor monitor, Dispatch.LimitInForce limits, StoreWrites writes)
    {
        ArgumentNullException.ThrowIfNull(writes);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(monitor);
        _meter = meterFactory.Create(MeterName);
        _meter.CreateObservableCounter("ingestion.windows.started", () => Volatile.Read(ref _windowsStarted), "{window}", "Windows admitted by the rate limiter.");
        _meter.CreateObservableCounter("ingestion.ids.fetched", () => Volatile.Read(ref _idsFetched), "{id}", "Ids whose upstream answer was stored.");
        _meter.CreateObservableCounter("ingestion.ids.failed", () => Volatile.Read(ref _idsFailed), "{id}", "Ids recorded as failed for good (attempts exhausted or a permanent error).");
        _meter.CreateObservableCounter("ingestion.ids.retried", () => Volatile.Read(ref _idsRetried), "{id}", "Ids put back in the queue to be called again: a failed or throttled call, or a window cut off at shutdown.");
        _meter.CreateObservableCounter("ingestion.upstream.pauses", () => Volatile.Read(ref _pauses), "{pause}", "Windows whose calls the upstream refused for quota (429, or 503 with Retry-After), each pausing every window.");
        _meter.CreateObservableCounter("ingestion.ids.cancelled", Cancelled, "{id}",
            "Ids cancelled before they started, by reason: requested (POST /ingestions/{id}/cancel) or expired (their not_after passed).");
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
        _meter.CreateObservableGauge("ingestion.queue.paused", () => monitor.QueuePaused ? 1 : 0, "{pause}",
            "1 while an operator has paused the queue (POST /queue/pause), 0 otherwise.");
        _meter.CreateObservableGauge("ingestion.limiter.max_ids_per_window", () => monitor.MaxIdsPerWindowSpan, "{id}",
            "The most ids started within any span of the window log as long as the Window in force at the window that ends it.");
        _meter.CreateObservableGauge("ingestion.limiter.violations", () => monitor.Violations, "{window}",
            "Windows that broke the limit in force when they started (too soon after the previous one, or more ids within their Window than their batch size): must stay 0.");
        _meter.CreateObservableGauge("ingestion.limiter.batch_size", () => limits.Current.BatchSize, "{id}",
            "Ids per window in force: Ingestion:BatchSize, or an operator's override (PUT /limits).");
        _meter.CreateObservableGauge("ingestion.limiter.window", () => limits.Current.Window.TotalSeconds, "s",
            "The window in force: Ingestion:Window, or an operator's override (PUT /limits).");
        _meter.CreateObservableCounter("ingestion.store.purged", Purged, "{row}",
            "Rows the retention sweeps of this process deleted, by table: ingestions, results, windows, idempotency_keys.");
        _meter.CreateObservableGauge("ingestion.store.size", () => monitor.StoreBytes, "By",
            "Bytes the store takes on disk: the SQLite file with its write-ahead log, or the PostgreSQL database.");
        _meter.CreateObservableGauge("ingestion.store.refusing_writes", () => writes.Current is null ? 0 : 1, "{state}",
            "1 while the store refuses writes (a full disk, a read-only database): submissions answer 503 meanwhile.");
    }

    /// <summary>Reports how long until the limiter admits the next window (zero when it would now).</summary>
    public void ObserveNextAdmission(Func<double> secondsUntilNextWindow) =>
        _meter.CreateObservableGauge("ingestion.limiter.next_admission", secondsUntilNextWindow, "s", "Seconds until the rate limiter admits the next window.");

    public void WindowStarted(ClaimedWindow window)
    {
        ArgumentNullException.ThrowIfNull(window);
        Interlocked.Increment(ref _windowsStarted);
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

        Interlocked.Add(ref _idsFetched, fetched);
        Interlocked.Add(ref _idsRetried, retried);
        Interlocked.Add(ref _idsFailed, failed);
        if (outcome.Pause is not null)
        {
            Interlocked.Increment(ref _pauses);
        }
    }

    /// <summary>Ids this process cancelled before they started: at an operator's request, or expired at an admission.</summary>
    public void IdsCancelled(int count, CancelReason reason) =>
        Interlocked.Add(ref reason == CancelReason.Expired ? ref _cancelledExpired : ref _cancelledRequested, count);

    private IEnumerable<Measurement<long>> Cancelled()
    {
        yield return new Measurement<long>(Volatile.Read(ref _cancelledRequested), new KeyValuePair<string, object?>("ingestion.cancel_reason", "requested"));
        yield return new Measurement<long>(Volatile.Read(ref _cancelledExpired), new KeyValuePair<string, object?>("ingestion.cancel_reason", "expired"));
    }

    /// <summary>What one batch of a retention sweep deleted.</summary>
    public void Purged(Scheduling.PurgeResult batch)
    {
        Interlocked.Add(ref _purged[0], batch.Ingestions);
        Interlocked.Add(ref _purged[1], batch.Results);
        Interlocked.Add(ref _purged[2], batch.Windows);
        Interlocked.Add(ref _purged[3], batch.Keys);
        Interlocked.Add(ref _purged[4], batch.Events);
    }

    private IEnumerable<Measurement<long>> Purged()
    {
        string[] tables = ["ingestions", "results", "windows", "idempotency_keys", "outbox"];
        for (var i = 0; i < tables.Length; i++)
        {
            yield return new Measurement<long>(Volatile.Read(ref _purged[i]), new KeyValuePair<string, object?>("ingestion.table", tables[i]));
        }
    }

    /// <summary>Ids of a window cut off at shutdown, handed back uncounted.</summary>
    public void IdsRequeued(int count) => Interlocked.Add(ref _idsRetried, count);

    private static IEnumerable<Measurement<long>> Waiting(QueueDepth depth)
    {
        foreach (var priority in new[] { Priority.High, Priority.Medium, Priority.Low })
        {
            yield return new Measurement<long>(depth.Of(priority), new KeyValuePair<string, object?>("ingestion.priority", priority.ToWire()));
        }
    }
}
