using IngestionService.Ingest;
using IngestionService.Scheduling;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>The shared store's read side: every answer read from the database, which every instance writes.</summary>
public sealed class PostgresQueueReader(NpgsqlDataSource dataSource, PostgresStatusReads statusReads) : IQueueReader
{
    /// <summary>Read together with the status reads in flight at the same moment: see <see cref="PostgresStatusReads"/>.</summary>
    public Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken) => statusReads.ReadAsync(ingestionId, cancellationToken);

    public async Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken)
    {
        // From the running totals: the same cost at any depth.
        await using var command = dataSource.CreateCommand(PostgresTotals.ByPriority);
        var totals = new QueueTotals();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            PostgresTotals.Read(totals, reader, 0);
        }

        return totals.Depth;
    }

    public async Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT paused_until FROM limiter WHERE id = 1");
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime until ? new DateTimeOffset(until, TimeSpan.Zero) : null;
    }

    public async Task<QueuePause?> GetQueuePauseAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT queue_paused_at, queue_pause_reason FROM limiter WHERE id = 1 AND queue_paused_at IS NOT NULL");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new QueuePause(reader.GetFieldValue<DateTimeOffset>(0), reader.IsDBNull(1) ? null : reader.GetString(1))
            : null;
    }

    public async Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);

        // The row at position -1 says the ingestion exists, so an unknown id and a page past the end differ.
        await using var command = dataSource.CreateCommand("""
            WITH i AS (SELECT seq FROM ingestions WHERE id = $1)
            (SELECT -1, NULL::integer, NULL::smallint, NULL::integer, NULL::text, NULL::boolean, NULL::integer, NULL::text, NULL::timestamptz, NULL::timestamptz FROM i)
            UNION ALL
            (SELECT r.position, r.id, r.state, r.http_status, r.body, r.truncated, r.attempts, r.error, r.fetched_at, r.next_attempt_at
             FROM i JOIN results r ON r.ingestion_seq = i.seq
             WHERE r.position > $2
             ORDER BY r.position
             LIMIT $3)
            """);
        command.Parameters.AddWithValue(ingestionId);
        command.Parameters.AddWithValue(afterPosition);
        command.Parameters.AddWithValue(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await IdResultRows.ReadAsync(reader, Time, cancellationToken);
    }

    public async Task<IReadOnlyList<string>> GetTraceParentsAsync(IReadOnlyCollection<Guid> ingestionIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ingestionIds);
        await using var command = dataSource.CreateCommand("SELECT trace_parent FROM ingestions WHERE id = ANY($1) AND trace_parent IS NOT NULL");
        command.Parameters.AddWithValue(ingestionIds.ToArray());
        var parents = new List<string>(ingestionIds.Count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            parents.Add(reader.GetString(0));
        }

        return parents;
    }

    public async Task<long> GetStoreBytesAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT pg_database_size(current_database())");
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task ProbeAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT 1");
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = dataSource.CreateCommand("""
            SELECT w.seq, w.started_at, w.finished_at, w.state, i.id, coalesce(wi.priority, i.priority), wi.first_pos, wi.ids, w.paused_until, wi.marks, w.window_ms, w.batch_size
            FROM (SELECT * FROM windows ORDER BY seq DESC LIMIT $1) w
            JOIN window_items wi ON wi.window_seq = w.seq
            JOIN ingestions i ON i.seq = wi.ingestion_seq
            ORDER BY w.seq DESC, coalesce(wi.priority, i.priority), i.created_at, wi.ingestion_seq, wi.first_pos
            """);
        command.Parameters.AddWithValue(limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await WindowLogRows.ReadAsync(reader, Guid, Time, cancellationToken);
    }

    public async Task<IReadOnlyList<LimitChange>> GetLimitChangesAsync(int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(LimitChangeRows.SelectNewest);
        command.Parameters.Add(new NpgsqlParameter("limit", NpgsqlTypes.NpgsqlDbType.Integer) { Value = limit });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await LimitChangeRows.ReadAsync(reader, Time, cancellationToken);
    }

    public async Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, IngestionFilter filter, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        await using var command = dataSource.CreateCommand(IngestionSummaryRows.SelectRecent);
        command.Parameters.Add(new NpgsqlParameter("priority", NpgsqlTypes.NpgsqlDbType.Smallint));
        command.Parameters.Add(new NpgsqlParameter("status", NpgsqlTypes.NpgsqlDbType.Smallint));
        command.Parameters.Add(new NpgsqlParameter("failed_only", NpgsqlTypes.NpgsqlDbType.Smallint));
        command.Parameters.Add(new NpgsqlParameter("limit", NpgsqlTypes.NpgsqlDbType.Integer));
        IngestionSummaryRows.Bind(command, limit, filter);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await IngestionSummaryRows.ReadAsync(reader, limit, Guid, Time, cancellationToken);
    }

    private static Guid Guid(System.Data.Common.DbDataReader reader, int ordinal) => reader.GetGuid(ordinal);

    private static DateTimeOffset Time(System.Data.Common.DbDataReader reader, int ordinal) => reader.GetFieldValue<DateTimeOffset>(ordinal);
}
