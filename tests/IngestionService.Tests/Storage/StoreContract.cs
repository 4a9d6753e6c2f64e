using IngestionService.Ingest;
using IngestionService.Storage;
using IngestionService.Tests.Infrastructure;

namespace IngestionService.Tests.Storage;

/// <summary>
/// What both contract suites share: a backend to open stores on (one per process or instance), and the
/// steps their tests are written in. Each suite runs once per backend (the way
/// System.Threading.RateLimiting tests its limiters), on real time and real databases; the windows are
/// short so the limiter's waits are too.
/// </summary>
public abstract class StoreContract(IStoreBackend backend) : IAsyncLifetime
{
    protected static readonly TimeSpan LongWindow = TimeSpan.FromMinutes(10);
    protected static readonly TimeSpan TinyWindow = TimeSpan.FromMilliseconds(1);
    protected static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);

    private readonly List<StoreUnderTest> _stores = [];

    protected static CancellationToken Token => TestContext.Current.CancellationToken;

    protected IStoreBackend Backend => backend;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }

        await backend.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    /// <summary>A new, initialised store on this test's database, as a new process (or instance) would open it.</summary>
    protected async Task<StoreUnderTest> OpenAsync()
    {
        var store = await backend.OpenAsync();
        _stores.Add(store);
        return store;
    }

    protected static Task<Guid> EnqueueAsync(StoreUnderTest store, Priority priority, params int[] ids) => EnqueueAsync(store, priority, notAfter: null, ids);

    protected static async Task<Guid> EnqueueAsync(StoreUnderTest store, Priority priority, DateTimeOffset? notAfter, params int[] ids)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var ingestion = new NewIngestion(Guid.CreateVersion7(now), priority, now, 3, ids, NotAfter: notAfter);
        await store.EnqueueAsync(ingestion, Token);
        return ingestion.Id;
    }

    protected static Task<WindowClaim> ClaimAsync(StoreUnderTest store, TimeSpan window) =>
        store.ClaimWindowAsync(3, window, Token);

    /// <summary>Claims until the limiter admits a window (it must within the deadline).</summary>
    protected static async Task<ClaimedWindow> ClaimEventuallyAsync(StoreUnderTest store, TimeSpan window)
    {
        var claim = await Eventually.ReturnsAsync(() => ClaimAsync(store, window), c => c.Window is not null, Deadline, "the limiter to admit a window");
        return claim.Window!;
    }

    /// <summary>
    /// Waits until an id handed back or retried without a delay just now is due: a store stamps the finish
    /// rounded up to the millisecond, so a claim within that millisecond would not see it yet.
    /// </summary>
    protected static Task WaitUntilDueAsync()
    {
        var due = DateTimeOffset.UtcNow.AddMilliseconds(2);
        return Eventually.HoldsAsync(() => DateTimeOffset.UtcNow >= due, Deadline, "the retried id to be due");
    }

    protected static Task CompleteAsync(StoreUnderTest store, ClaimedWindow window) =>
        store.CompleteWindowAsync(window, new WindowOutcome([.. window.Items.Select(item => Succeeded(item))]), Token);

    protected static FetchOutcome Succeeded(WindowItem item) =>
        new(FetchState.Succeeded, null, $$"""{"id":{{item.Id}},"data":"processed"}""", false, null, item.PriorAttempts + 1, item.PriorThrottled, null);

    protected static FetchOutcome Retry(WindowItem item, TimeSpan after) =>
        new(FetchState.Retrying, 500, "oops", false, "HTTP 500 Internal Server Error", item.PriorAttempts + 1, item.PriorThrottled, after);

    protected static Task<EnqueueResult> EnqueueWithKeyAsync(StoreUnderTest store, string key, Priority priority, int[] ids, TimeSpan lifetime)
    {
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var idempotency = new IdempotencyKey(key, IngestionSubmitter.RequestHash(IngestParseResult.Ok(priority, ids)), now + lifetime);
        return store.EnqueueAsync(new NewIngestion(Guid.CreateVersion7(now), priority, now, 3, ids, idempotency), Token);
    }

    protected static int[] Ids(ClaimedWindow window) => [.. window.Items.Select(item => item.Id)];
}
