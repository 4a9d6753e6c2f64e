using IngestionService.Ingest;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// New ingestions are group-committed: requests that arrive while a commit is running share the next one,
/// and each is acknowledged only after the commit that holds it. The loop runs on a thread of its own: it
/// blocks while nothing waits, and a new request wakes it at once rather than queueing it behind every
/// other work item on the thread pool, whose delay on two busy cores would go into every POST.
/// </summary>
internal sealed class SqliteGroupCommit : IAsyncDisposable
{
    private const int MaxIngestionsPerCommit = 256;

    private readonly SqliteDatabase _database;

    // Synchronous continuations only release the commit thread's blocking wait (it never awaits the
    // channel), so a request's write wakes that thread directly instead of through the thread pool's queue.
    private readonly Channel<PendingEnqueue> _enqueues = Channel.CreateUnbounded<PendingEnqueue>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });

    // Prepared once on the writer: preparing costs more than the insert itself.
    private readonly RawStatement _begin;
    private readonly RawStatement _commit;
    private readonly RawStatement _rollback;
    private readonly RawStatement _insertIngestion;
    private readonly Task _loop;

    public SqliteGroupCommit(SqliteDatabase database)
    {
        _database = database;
        _begin = new RawStatement(database.Writer, "BEGIN IMMEDIATE");
        _commit = new RawStatement(database.Writer, "COMMIT");
        _rollback = new RawStatement(database.Writer, "ROLLBACK");
        _insertIngestion = new RawStatement(database.Writer, """
            INSERT INTO ingestions (id, priority, created_at, batch_size, total, ids, ids_before, not_after, callback_url, status_url, trace_parent)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
            """);
        _loop = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>
    /// Hands the ingestion to the next commit. Not cancellable: once handed over it may be committed, and
    /// the caller must learn the outcome rather than guess.
    /// </summary>
    public Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion)
    {
        var pending = new PendingEnqueue(ingestion);
        if (!_enqueues.Writer.TryWrite(pending))
        {
            throw new InvalidOperationException("The store is shutting down and takes no new ingestions.");
        }

        return pending.Task;
    }

    private void Loop()
    {
        var reader = _enqueues.Reader;
        var batch = new List<PendingEnqueue>(MaxIngestionsPerCommit);
        while (reader.TryPeek(out _) || reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (batch.Count < MaxIngestionsPerCommit && reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }

            try
            {
                var results = Commit(batch);
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].TrySetResult(results[i]);
                }
            }
            catch (Exception exception)
            {
                foreach (var pending in batch)
                {
                    pending.TrySetException(exception);
                }
            }

            batch.Clear();
        }
    }

    /// <summary>
    /// One group commit, run on the commit thread from start to end: the inserts go through statements
    /// prepared once (<see cref="RawStatement"/>), so a commit allocates little more than its answers.
    /// </summary>
    private EnqueueResult[] Commit(List<PendingEnqueue> batch)
    {
        var database = _database;
        var results = new EnqueueResult[batch.Count];
        var committing = false;
        database.WriteLock.Wait();
        try
        {
            var writer = database.Writer;
            var totals = database.Totals;
            _begin.Execute();
            try
            {
                var added = new long[3];
                var lastCreatedAt = database.LastCreatedAt;
                Span<byte> id = stackalloc byte[16];
                for (var index = 0; index < batch.Count; index++)
                {
                    var ingestion = batch[index].Ingestion;
                    var priority = (int)ingestion.Priority;
                    if (ingestion.Idempotency is { } key)
                    {
                        // Checked in the commit that would store the ingestion, so two requests with one key
                        // cannot both create one, whether they share this commit or not.
                        results[index] = ClaimIdempotencyKey(writer, ingestion, key);
                        if (results[index].Outcome != EnqueueOutcome.Created)
                        {
                            continue;
                        }
                    }
                    else
                    {
                        results[index] = new EnqueueResult(ingestion.Id, EnqueueOutcome.Created);
                    }

                    // Created times never go backwards in arrival order, so (created time, arrival) and arrival
                    // agree, and the running totals follow the global order exactly. Requests racing within a
                    // millisecond or two are the only ones this can move.
                    lastCreatedAt = Math.Max(lastCreatedAt, ingestion.CreatedAt.ToUnixTimeMilliseconds());
                    SqliteIds.Write(ingestion.Id, id);
                    _insertIngestion.Bind(1, id);
                    _insertIngestion.Bind(2, priority);
                    _insertIngestion.Bind(3, lastCreatedAt);
                    _insertIngestion.Bind(4, ingestion.BatchSize);
                    _insertIngestion.Bind(5, ingestion.Ids.Length);
                    _insertIngestion.Bind(6, IdBlob.AsBytes(ingestion.Ids));
                    _insertIngestion.Bind(7, totals.Enqueued(ingestion.Priority) + added[priority]);
                    _insertIngestion.Bind(8, ingestion.NotAfter?.ToUnixTimeMilliseconds());
                    _insertIngestion.Bind(9, ingestion.CallbackUrl?.AbsoluteUri);
                    _insertIngestion.Bind(10, ingestion.StatusUrl);
                    _insertIngestion.Bind(11, ingestion.TraceParent);
                    _insertIngestion.Execute();
                    added[priority] += ingestion.Ids.Length;
                }

                committing = true;
                database.Memo.Creating();
                _commit.Execute();
                database.LastCreatedAt = lastCreatedAt;
                for (var priority = 0; priority < added.Length; priority++)
                {
                    totals.AddEnqueued((Priority)priority, added[priority]);
                }
            }
            catch when (raw.sqlite3_get_autocommit(writer.Handle) == 0)
            {
                // Still inside the transaction (a failed insert, or a COMMIT that could not finish): undone
                // whole, so no request of the batch is left half-stored.
                _rollback.Execute();
                throw;
            }
        }
        finally
        {
            if (committing)
            {
                database.Memo.Created();
            }

            database.WriteLock.Release();
        }

        return results;
    }

    /// <summary>
    /// Stores the key for this ingestion unless a live one exists: then it answers that key's ingestion
    /// (same request) or a conflict (another request). An expired key is forgotten and taken anew, and a
    /// few expired keys are swept out with every new one.
    /// </summary>
    private static EnqueueResult ClaimIdempotencyKey(SqliteConnection writer, NewIngestion ingestion, IdempotencyKey key)
    {
        var now = ingestion.CreatedAt.ToUnixTimeMilliseconds();
        using (var find = writer.CreateCommand())
        {
            find.CommandText = SqliteQueueStore.FindKeySql;
            find.Parameters.AddWithValue("$key", key.Key);
            find.Parameters.AddWithValue("$now", now);
            using var reader = find.ExecuteReader();
            if (reader.Read())
            {
                return SqliteQueueStore.Earlier(reader, key.RequestHash);
            }
        }

        using var store = writer.CreateCommand();
        store.CommandText = $"""
            DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys WHERE expires_at <= $now LIMIT {IdempotencyKey.SweptPerNewKey});
            INSERT OR REPLACE INTO idempotency_keys (key, request_hash, ingestion_id, expires_at) VALUES ($key, $hash, $ingestion_id, $expires_at);
            """;
        store.Parameters.AddWithValue("$now", now);
        store.Parameters.AddWithValue("$key", key.Key);
        store.Parameters.AddWithValue("$hash", key.RequestHash);
        store.Parameters.AddWithValue("$ingestion_id", SqliteIds.Bytes(ingestion.Id));
        store.Parameters.AddWithValue("$expires_at", key.ExpiresAt.ToUnixTimeMilliseconds());
        store.ExecuteNonQuery();
        return new EnqueueResult(ingestion.Id, EnqueueOutcome.Created);
    }

    /// <summary>Takes no more requests, commits the ones already handed over, then finalizes its statements before the writer closes.</summary>
    public async ValueTask DisposeAsync()
    {
        _enqueues.Writer.TryComplete();
        await _loop;
        _insertIngestion.Dispose();
        _begin.Dispose();
        _commit.Dispose();
        _rollback.Dispose();
    }

    /// <summary>A request waiting for the group commit, and the promise of its outcome in one object.</summary>
    private sealed class PendingEnqueue(NewIngestion ingestion) : TaskCompletionSource<EnqueueResult>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public NewIngestion Ingestion { get; } = ingestion;
    }
}
