using IngestionService.Ingest;
using Npgsql;
using NpgsqlTypes;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// New ingestions without an idempotency key are group-committed: the requests that arrive while one
/// insert is in flight share the next, one statement that takes the <c>queue_totals</c> lock, stamps the
/// created time, and inserts every row from arrays; each request is acknowledged only after that statement
/// committed. One statement per batch rather than one per request: the enqueues of all instances are
/// serialised by that lock anyway (so <c>ids_before</c> is exact), and a commit waits for its WAL flush,
/// which a batch pays once.
/// </summary>
internal sealed class PostgresGroupCommit : IAsyncDisposable
{
    private const int MaxIngestionsPerCommit = 256;

    /// <summary>A batch stops growing past this many ids (one request of any size still goes alone).</summary>
    private const int MaxIdsPerCommit = 256 * 1024;

    /// <summary>
    /// Inserts the ingestions in their order, under the totals lock; the arrays are bound by <see cref="Bind(NpgsqlCommand, IReadOnlyList{NewIngestion})"/>.
    /// The created time is taken after the lock is held, so created times and arrival sequences agree
    /// across all instances; each row's <c>ids_before</c> is its priority's enqueued total before it.
    /// </summary>
    public static readonly string InsertSql = $"""
        WITH totals AS (
            UPDATE queue_totals SET {PostgresTotals.Add("enqueued", "($7::bigint[])")},
                last_created_at = greatest(last_created_at, date_trunc('milliseconds', clock_timestamp()))
            WHERE id = 1
            RETURNING enqueued, last_created_at)
        INSERT INTO ingestions (id, priority, created_at, batch_size, total, ids, not_after, ids_before, callback_url, status_url, trace_parent)
        SELECT b.id, b.priority, t.last_created_at, b.batch_size, b.total, b.ids, b.not_after,
               t.enqueued[b.priority + 1] - sum(b.total) OVER (PARTITION BY b.priority ORDER BY b.ord ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING),
               b.callback_url, b.status_url, b.trace_parent
        FROM unnest($1::uuid[], $2::smallint[], $3::integer[], $4::integer[], $5::bytea[], $6::timestamptz[], $8::text[], $9::text[], $10::text[])
            WITH ORDINALITY AS b(id, priority, batch_size, total, ids, not_after, callback_url, status_url, trace_parent, ord)
        CROSS JOIN totals t
        ORDER BY b.ord
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly PostgresGroups<NewIngestion, EnqueueResult> _groups;

    public PostgresGroupCommit(NpgsqlDataSource dataSource)
    {
        _dataSource = dataSource;
        _groups = new PostgresGroups<NewIngestion, EnqueueResult>(CommitAsync, MaxIngestionsPerCommit, weight: ingestion => ingestion.Ids.Length, maxWeight: MaxIdsPerCommit);
    }

    /// <summary>
    /// Hands the ingestion to the next commit. Not cancellable: once handed over it may be committed, and
    /// the caller must learn the outcome rather than guess.
    /// </summary>
    public Task<EnqueueResult> EnqueueAsync(NewIngestion ingestion) => _groups.SubmitAsync(ingestion);

    /// <summary>Binds the parameters of <see cref="InsertSql"/> for <paramref name="ingestions"/>, in their order.</summary>
    public static void Bind(NpgsqlCommand command, IReadOnlyList<NewIngestion> ingestions)
    {
        ArgumentNullException.ThrowIfNull(command);
        Bind(command.Parameters, ingestions);
    }

    private static void Bind(NpgsqlParameterCollection parameters, IReadOnlyList<NewIngestion> ingestions)
    {
        ArgumentNullException.ThrowIfNull(ingestions);
        parameters.AddWithValue(ingestions.Select(i => i.Id).ToArray());
        parameters.AddWithValue(ingestions.Select(i => (short)i.Priority).ToArray());
        parameters.AddWithValue(ingestions.Select(i => i.BatchSize).ToArray());
        parameters.AddWithValue(ingestions.Select(i => i.Ids.Length).ToArray());
        parameters.AddWithValue(ingestions.Select(i => IdBlob.Pack(i.Ids)).ToArray());
        parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.TimestampTz, ingestions.Select(i => i.NotAfter?.ToUniversalTime()).ToArray());
        parameters.AddWithValue(PostgresTotals.Deltas(ingestions, i => i.Priority, i => i.Ids.Length));
        parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, ingestions.Select(i => i.CallbackUrl?.AbsoluteUri).ToArray());
        parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, ingestions.Select(i => i.StatusUrl).ToArray());
        parameters.AddWithValue(NpgsqlDbType.Array | NpgsqlDbType.Text, ingestions.Select(i => i.TraceParent).ToArray());
    }

    /// <summary>One statement, so none of the group is stored if it fails; one round trip, one implicit transaction, and the other instances hear of the work once it is committed.</summary>
    private async Task<EnqueueResult[]> CommitAsync(IReadOnlyList<NewIngestion> ingestions)
    {
        await using var statements = _dataSource.CreateBatch();
        var insert = new NpgsqlBatchCommand(InsertSql);
        Bind(insert.Parameters, ingestions);
        statements.BatchCommands.Add(insert);
        statements.BatchCommands.Add(new NpgsqlBatchCommand(PostgresWakeUps.NotifySql));
        await statements.ExecuteNonQueryAsync();
        return [.. ingestions.Select(ingestion => new EnqueueResult(ingestion.Id, EnqueueOutcome.Created))];
    }

    /// <summary>Takes no new ingestions and waits for the ones handed over to be committed or refused.</summary>
    public ValueTask DisposeAsync() => _groups.DisposeAsync();
}
