using IngestionService.Ingest;
using IngestionService.Scheduling;
using IngestionService.Storage;
using IngestionService.Storage.Postgres;
using IngestionService.Storage.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace IngestionService.Tests.Infrastructure;

/// <summary>
/// One backend's two sides, the write path and the read side, opened on one database as one process (or
/// instance) opens them, and closed in the order the service's container closes them.
/// </summary>
public sealed class StoreUnderTest : IQueueStore, IQueueReader, IAsyncDisposable
{
    private readonly Func<ValueTask> _dispose;

    private StoreUnderTest(IQueueStore queue, IQueueReader reader, IOutboxStore outbox, Func<ValueTask> dispose, SqliteDatabase? sqlite = null)
    {
        Queue = queue;
        Reader = reader;
        Outbox = outbox;
        Sqlite = sqlite;
        _dispose = dispose;
    }

    public IQueueStore Queue { get; }

    public IQueueReader Reader { get; }

    /// <summary>The webhook outbox on the same database.</summary>
    public IOutboxStore Outbox { get; }

    /// <summary>The embedded store's file, for what only it does (checkpoints); null on PostgreSQL.</summary>
    public SqliteDatabase? Sqlite { get; }

    /// <summary>The shared store's status reads, for what only they do (answers from memory); null on SQLite.</summary>
    public PostgresStatusReads? StatusReads { get; private init; }

    public TimeSpan? PollInterval => Queue.PollInterval;

    /// <summary>The embedded store on a SQLite file, on the process's clock unless a test gives its own.</summary>
    public static async Task<StoreUnderTest> OpenSqliteAsync(
        string connectionString,
        SqliteSynchronous synchronous = SqliteSynchronous.Normal,
        TimeProvider? clock = null,
        TimeSpan? checkpointInterval = null,
        long? walRestartBytes = null)
    {
        var database = new SqliteDatabase(Options.Create(new StorageOptions { ConnectionString = connectionString, Synchronous = synchronous }), NullLogger<SqliteDatabase>.Instance)
        {
            CheckpointInterval = checkpointInterval ?? TimeSpan.FromSeconds(1),
            WalRestartBytes = walRestartBytes ?? SqliteDatabase.DefaultWalRestartBytes,
        };
        var queue = new SqliteQueueStore(database, clock ?? TimeProvider.System, NullLogger<SqliteQueueStore>.Instance);
        var store = new StoreUnderTest(queue, new SqliteQueueReader(database), new SqliteOutboxStore(database, clock ?? TimeProvider.System), async () =>
        {
            await queue.DisposeAsync();
            await database.DisposeAsync();
        }, database);
        await store.InitializeAsync(TestContext.Current.CancellationToken);
        return store;
    }

    /// <summary>The shared store as one instance on PostgreSQL; disposing it hands its running windows back, as a graceful stop does.</summary>
    public static async Task<StoreUnderTest> OpenPostgresAsync(NpgsqlDataSource dataSource, TimeSpan lease, bool initialize = true, TimeSpan? statusQuietAfter = null)
    {
        var queue = new PostgresQueueStore(
            dataSource,
            Options.Create(new IngestionOptions { Lease = lease, PollInterval = TimeSpan.FromMilliseconds(100) }),
            NullLogger<PostgresQueueStore>.Instance);
        var reads = new PostgresStatusReads(dataSource, statusQuietAfter);
        var store = new StoreUnderTest(queue, new PostgresQueueReader(dataSource, reads), new PostgresOutboxStore(dataSource), async () =>
        {
            await queue.DisposeAsync();
            await reads.DisposeAsync();
        })
        { StatusReads = reads };
        if (initialize)
        {
            await store.InitializeAsync(TestContext.Current.CancellationToken);
        }

        return store;
    }

    public Task InitializeAsync(CancellationToken cancellationToken) => Queue.InitializeAsync(cancellationToken);

    public Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion, CancellationToken cancellationToken) => Queue.EnqueueAsync(ingestion, cancellationToken);

    public Task<EnqueueResult?> FindIdempotencyKeyAsync(string key, byte[] requestHash, CancellationToken cancellationToken) =>
        Queue.FindIdempotencyKeyAsync(key, requestHash, cancellationToken);

    public Task<WindowClaim> ClaimWindowAsync(int maxIds, WindowSpacing spacing, CancellationToken cancellationToken) =>
        Queue.ClaimWindowAsync(maxIds, spacing, cancellationToken);

    public Task<DateTimeOffset> CompleteWindowAsync(ClaimedWindow window, WindowOutcome outcome, CancellationToken cancellationToken) =>
        Queue.CompleteWindowAsync(window, outcome, cancellationToken);

    public Task AbandonWindowAsync(ClaimedWindow window, CancellationToken cancellationToken) => Queue.AbandonWindowAsync(window, cancellationToken);

    public Task<QueuePause> PauseQueueAsync(string? reason, CancellationToken cancellationToken) => Queue.PauseQueueAsync(reason, cancellationToken);

    public Task<bool> ResumeQueueAsync(CancellationToken cancellationToken) => Queue.ResumeQueueAsync(cancellationToken);

    public Task<CancelOutcome> CancelAsync(Guid ingestionId, CancellationToken cancellationToken) => Queue.CancelAsync(ingestionId, cancellationToken);

    public Task<LimitChange> SetLimitAsync(IngestionService.Scheduling.RateLimit? limit, CancellationToken cancellationToken) => Queue.SetLimitAsync(limit, cancellationToken);

    public Task<ReprioritiseOutcome> ReprioritiseAsync(Guid ingestionId, Priority priority, CancellationToken cancellationToken) => Queue.ReprioritiseAsync(ingestionId, priority, cancellationToken);

    public Task<IngestionService.Scheduling.PurgeResult> PurgeAsync(IngestionService.Scheduling.PurgeRequest request, CancellationToken cancellationToken) => Queue.PurgeAsync(request, cancellationToken);

    public Task ProbeWriteAsync(CancellationToken cancellationToken) => Queue.ProbeWriteAsync(cancellationToken);

    public Task<QueuePause?> GetQueuePauseAsync(CancellationToken cancellationToken) => Reader.GetQueuePauseAsync(cancellationToken);

    public Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken) => Reader.GetIngestionAsync(ingestionId, cancellationToken);

    public Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken) =>
        Reader.GetResultsAsync(ingestionId, afterPosition, limit, cancellationToken);

    public Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken) => Reader.GetPausedUntilAsync(cancellationToken);

    public Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken) => Reader.GetRecentWindowsAsync(limit, cancellationToken);

    public Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, IngestionFilter filter, CancellationToken cancellationToken) => Reader.GetRecentIngestionsAsync(limit, filter, cancellationToken);

    public Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, CancellationToken cancellationToken) => Reader.GetRecentIngestionsAsync(limit, IngestionFilter.None, cancellationToken);

    public Task<IReadOnlyList<LimitChange>> GetLimitChangesAsync(int limit, CancellationToken cancellationToken) => Reader.GetLimitChangesAsync(limit, cancellationToken);

    public Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken) => Reader.GetQueueDepthAsync(cancellationToken);

    public Task ProbeAsync(CancellationToken cancellationToken) => Reader.ProbeAsync(cancellationToken);

    public Task<long> GetStoreBytesAsync(CancellationToken cancellationToken) => Reader.GetStoreBytesAsync(cancellationToken);

    public Task<IReadOnlyList<string>> GetTraceParentsAsync(IReadOnlyCollection<Guid> ingestionIds, CancellationToken cancellationToken) => Reader.GetTraceParentsAsync(ingestionIds, cancellationToken);

    public ValueTask DisposeAsync() => _dispose();
}
