using IngestionService.Control;
using IngestionService.Dispatch;
using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Upstream;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// The real dispatcher and the real SQLite store on a fake clock. Time moves only when a test says so,
/// in small steps, and only once the dispatcher is parked on something that has not happened yet, so
/// every run sees the same timeline.
/// </summary>
public sealed class SchedulingHarness : IAsyncDisposable
{
    public static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan ParkTimeout = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _stop = new();

    private SchedulingHarness(FakeTimeProvider clock, StoreUnderTest store, Dispatcher dispatcher, IngestionSubmitter submitter, CountingUpstream upstream)
    {
        Clock = clock;
        Store = store;
        Dispatcher = dispatcher;
        Submitter = submitter;
        Upstream = upstream;
    }

    public FakeTimeProvider Clock { get; }

    public StoreUnderTest Store { get; }

    public Dispatcher Dispatcher { get; }

    public IngestionSubmitter Submitter { get; }

    public CountingUpstream Upstream { get; }

    /// <summary>Pause, resume and cancel, as the control API does them.</summary>
    public QueueControl Control { get; private init; } = null!;

    /// <summary>Fake time elapsed since <see cref="T0"/>.</summary>
    public TimeSpan Elapsed => Clock.GetUtcNow() - T0;

    public static async Task<SchedulingHarness> StartAsync(
        TempDatabase database,
        TimeSpan? window = null,
        TimeSpan? fetchDelay = null,
        int batchSize = 3,
        DateTimeOffset? now = null,
        Func<int, int, UpstreamAnswer?>? script = null,
        UpstreamOptions? upstreamOptions = null,
        Func<IQueueStore, TimeProvider, IQueueStore>? dispatcherStore = null)
    {
        var clock = new FakeTimeProvider(now ?? T0);
        var ingestion = Options.Create(new IngestionOptions { BatchSize = batchSize, Window = window ?? TimeSpan.FromSeconds(5), ShutdownTimeout = TimeSpan.Zero });
        var store = await StoreUnderTest.OpenSqliteAsync(database.ConnectionString, clock: clock);
        var signal = new DispatchSignal();
        var upstream = new CountingUpstream(clock, fetchDelay ?? TimeSpan.FromSeconds(1), script);
        // No jitter on the fake clock: every retry comes due at the top of its range, so tests know when.
        var retryPolicy = new RetryPolicy(Options.Create(upstreamOptions ?? new UpstreamOptions()), () => 1.0);
        var limits = new LimitInForce(ingestion);
        var dispatcher = new Dispatcher(dispatcherStore?.Invoke(store.Queue, clock) ?? store.Queue, upstream, retryPolicy, signal, new AdmissionBound(), clock, ingestion, Options.Create(upstreamOptions ?? new UpstreamOptions()), limits, NullLogger<Dispatcher>.Instance);
        var harness = new SchedulingHarness(clock, store, dispatcher, new IngestionSubmitter(store.Queue, signal, clock, ingestion, limits), upstream)
        {
            Control = new QueueControl(store.Queue, signal, limits, clock),
        };
        await dispatcher.StartAsync(CancellationToken.None);
        await harness.QuiescentAsync();
        return harness;
    }

    /// <summary>Submits like <c>POST /ingest</c> does, then lets the dispatcher react before time moves on.</summary>
    public Task<Guid> SubmitAsync(Priority priority, params int[] ids) => SubmitAsync(priority, notAfter: null, ids);

    /// <summary>Submits with a <c>not_after</c>: ids not started by then expire.</summary>
    public async Task<Guid> SubmitAsync(Priority priority, DateTimeOffset? notAfter, params int[] ids)
    {
        var result = await Submitter.SubmitAsync(IngestParseResult.Ok(priority, ids) with { NotAfter = notAfter }, null, null, CancellationToken.None);
        await QuiescentAsync();
        return result.IngestionId;
    }

    /// <summary>Moves the fake clock to <see cref="T0"/> + <paramref name="elapsed"/>, step by step.</summary>
    public async Task AdvanceToAsync(TimeSpan elapsed)
    {
        while (Elapsed < elapsed)
        {
            await QuiescentAsync();
            var step = elapsed - Elapsed < Step ? elapsed - Elapsed : Step;
            Clock.Advance(step);
        }

        await QuiescentAsync();
    }

    /// <summary>The window log, oldest first.</summary>
    public async Task<IReadOnlyList<WindowRecord>> WindowsAsync() =>
        [.. (await Store.GetRecentWindowsAsync(10_000, CancellationToken.None)).Reverse()];

    public async Task<IngestionStatus> StatusAsync(Guid ingestionId) =>
        StatusReport.Build((await Store.GetIngestionAsync(ingestionId, CancellationToken.None))!);

    /// <summary>Waits until the dispatcher is parked on something that has not completed yet.</summary>
    public Task QuiescentAsync() =>
        Eventually.HoldsAsync(() => Dispatcher.ParkedOn is { IsCompleted: false }, ParkTimeout, "the dispatcher to park");

    /// <summary>Stops the dispatcher the way a dying process does: whatever is in flight stays in flight.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await Dispatcher.StopAsync(CancellationToken.None);
        Dispatcher.Dispose();
        await Store.DisposeAsync();
        _stop.Dispose();
    }
}
