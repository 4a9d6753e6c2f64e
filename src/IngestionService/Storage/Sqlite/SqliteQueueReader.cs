using IngestionService.Ingest;
using Microsoft.Data.Sqlite;

namespace IngestionService.Storage.Sqlite;

/// <summary>
/// The embedded store's read side: pooled read connections with prepared statements, status reads served
/// from the memo between the commits that could change them, and the queue's depth, ids ahead and pause
/// from what the one writer keeps in memory.
/// </summary>
public sealed class SqliteQueueReader(SqliteDatabase database) : IQueueReader
{
    public async Task<IngestionSnapshot?> GetIngestionAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        // Taken before reading: a commit during the read starts new generations, and this read's answer
        // goes to the old ones, where it is never served.
        var known = database.Memo.Known;
        var unknown = database.Memo.Unknown;
        if (known.TryGet(ingestionId, out var memo))
        {
            return Live(memo);
        }

        if (unknown.TryGet(ingestionId, out _))
        {
            return null;
        }

        var read = await ReadIngestionAsync(ingestionId, cancellationToken);
        if (read is null)
        {
            unknown.Add(ingestionId, true, 64);
            return null;
        }

        known.Add(ingestionId, read, read.Bytes);
        return Live(read);
    }

    /// <summary>A stored read with what the live totals and the pause say now.</summary>
    private IngestionSnapshot Live(SnapshotMemo.Read read) => read.Snapshot with
    {
        IdsAhead = read.IdsBefore is { } before ? database.Totals.IdsAhead(read.Snapshot.Priority, before, read.RequeuedAhead) : 0,
        PausedUntil = database.PausedUntil,
        QueuePaused = database.QueuePause is not null,
    };

    private async Task<SnapshotMemo.Read?> ReadIngestionAsync(Guid ingestionId, CancellationToken cancellationToken)
    {
        using var session = await database.Readers.RentAsync(cancellationToken);

        // One statement, so the counters, the spans and the requeued positions come from one snapshot
        // without BEGIN and COMMIT around several queries. The first column says what a row is.
        // CROSS JOIN makes SQLite walk the (nearly always empty) requeued table first: left to itself it
        // may walk every ingestion instead, and a status read then grows with the queue.
        var command = session.Command("""
            WITH i AS (SELECT seq, priority, created_at, batch_size, started, completed, total, ids, ids_before, failed, not_after, cancelled_from, cancelled_at, cancel_reason FROM ingestions WHERE id = $id)
            SELECT 0, priority, created_at, batch_size, coalesce(cancelled_from, started), completed, ids FROM i
            UNION ALL
            SELECT 1, wi.first_pos, wi.count, w.started_at, w.finished_at, w.state, NULL
            FROM i JOIN window_items wi ON wi.ingestion_seq = i.seq JOIN windows w ON w.seq = wi.window_seq
            UNION ALL
            SELECT 2, q.position, NULL, NULL, NULL, NULL, NULL
            FROM i JOIN requeued q ON q.ingestion_seq = i.seq
            UNION ALL
            SELECT 3, i.ids_before,
                (SELECT count(*) FROM requeued q CROSS JOIN ingestions r ON r.seq = q.ingestion_seq
                 WHERE r.priority = i.priority AND (r.created_at, r.seq) <= (i.created_at, i.seq)),
                (SELECT coalesce(sum(c.total - c.cancelled_from), 0) FROM ingestions c
                 WHERE c.priority = i.priority AND c.cancelled_from < c.total AND (c.created_at, c.seq) > (i.created_at, i.seq)),
                NULL, NULL, NULL
            FROM i WHERE i.started < i.total
            UNION ALL
            SELECT 5, cancelled_from, cancelled_at, cancel_reason, not_after, NULL, NULL
            FROM i WHERE cancelled_from IS NOT NULL OR not_after IS NOT NULL
            UNION ALL
            SELECT 4, r.position, NULL, NULL, NULL, NULL, NULL
            FROM i JOIN results r ON r.ingestion_seq = i.seq AND r.state = 2 WHERE i.failed > 0
            """, "$id");
        command.Parameters[0].Value = SqliteIds.Bytes(ingestionId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);

        Priority priority = default;
        DateTimeOffset createdAt = default;
        int batchSize = 0, started = 0, completed = 0;
        int[]? ids = null;
        var spans = new List<WindowSpan>();
        var requeued = new List<int>();
        List<int>? failed = null;
        long? idsBefore = null;
        long requeuedAhead = 0;
        Cancellation? cancel = null;
        DateTimeOffset? notAfter = null;
        while (await reader.ReadAsync(cancellationToken))
        {
            switch (reader.GetInt32(0))
            {
                case 0:
                    priority = (Priority)reader.GetInt32(1);
                    createdAt = SqliteIds.Time(reader, 2);
                    batchSize = reader.GetInt32(3);
                    started = reader.GetInt32(4);
                    completed = reader.GetInt32(5);
                    ids = IdBlob.Read(reader, 6);
                    break;
                case 1:
                    spans.Add(new WindowSpan(reader.GetInt32(1), reader.GetInt32(2), SqliteIds.Time(reader, 3), SqliteIds.NullableTime(reader, 4), (WindowState)reader.GetInt32(5)));
                    break;
                case 2:
                    requeued.Add(reader.GetInt32(1));
                    break;
                case 3:
                    // Cancelled tails behind it left the started total without having been ahead of it.
                    idsBefore = reader.GetInt64(1) + reader.GetInt64(3);
                    requeuedAhead = reader.GetInt64(2);
                    break;
                case 5:
                    cancel = reader.IsDBNull(1) ? null : new Cancellation(reader.GetInt32(1), SqliteIds.Time(reader, 2), (CancelReason)reader.GetInt32(3));
                    notAfter = SqliteIds.NullableTime(reader, 4);
                    break;
                default:
                    (failed ??= []).Add(reader.GetInt32(1));
                    break;
            }
        }

        return ids is null ? null : new SnapshotMemo.Read(
            new IngestionSnapshot(ingestionId, priority, createdAt, batchSize, ids, started, completed, spans, requeued, FailedPositions: failed, Cancel: cancel, NotAfter: notAfter),
            idsBefore,
            requeuedAhead);
    }

    public async Task<IReadOnlyList<WindowRecord>> GetRecentWindowsAsync(int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        using var session = await database.Readers.RentAsync(cancellationToken);
        var command = session.Command("""
            SELECT w.seq, w.started_at, w.finished_at, w.state, i.id, coalesce(wi.priority, i.priority), wi.first_pos, wi.ids, w.paused_until, wi.marks, w.window_ms, w.batch_size
            FROM (SELECT * FROM windows ORDER BY seq DESC LIMIT $limit) w
            JOIN window_items wi ON wi.window_seq = w.seq
            JOIN ingestions i ON i.seq = wi.ingestion_seq
            ORDER BY w.seq DESC, coalesce(wi.priority, i.priority), i.created_at, wi.ingestion_seq, wi.first_pos
            """, "$limit");
        command.Parameters[0].Value = limit;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await WindowLogRows.ReadAsync(reader, SqliteIds.Read, SqliteIds.Time, cancellationToken);
    }

    public async Task<IReadOnlyList<IngestionSummary>> GetRecentIngestionsAsync(int limit, IngestionFilter filter, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        using var session = await database.Readers.RentAsync(cancellationToken);
        var command = session.Command(IngestionSummaryRows.SelectRecent, IngestionSummaryRows.Parameters);
        IngestionSummaryRows.Bind(command, limit, filter);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await IngestionSummaryRows.ReadAsync(reader, limit, SqliteIds.Read, SqliteIds.Time, cancellationToken);
    }

    public Task<QueueDepth> GetQueueDepthAsync(CancellationToken cancellationToken) => Task.FromResult(database.Totals.Depth);

    public Task<long> GetStoreBytesAsync(CancellationToken cancellationToken) => Task.FromResult(database.StoreBytes());

    public async Task<IReadOnlyList<string>> GetTraceParentsAsync(IReadOnlyCollection<Guid> ingestionIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ingestionIds);
        using var session = await database.Readers.RentAsync(cancellationToken);
        var command = session.Command("SELECT trace_parent FROM ingestions WHERE id = $id AND trace_parent IS NOT NULL", "$id");
        var parents = new List<string>(ingestionIds.Count);
        foreach (var id in ingestionIds)
        {
            command.Parameters["$id"].Value = SqliteIds.Bytes(id);
            if (await command.ExecuteScalarAsync(cancellationToken) is string parent)
            {
                parents.Add(parent);
            }
        }

        return parents;
    }

    public Task<DateTimeOffset?> GetPausedUntilAsync(CancellationToken cancellationToken) => Task.FromResult(database.PausedUntil);

    public Task<QueuePause?> GetQueuePauseAsync(CancellationToken cancellationToken) => Task.FromResult(database.QueuePause);

    public async Task<IReadOnlyList<LimitChange>> GetLimitChangesAsync(int limit, CancellationToken cancellationToken)
    {
        using var session = await database.Readers.RentAsync(cancellationToken);
        var command = session.Command(LimitChangeRows.SelectNewest, "@limit");
        command.Parameters[0].Value = limit;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await LimitChangeRows.ReadAsync(reader, SqliteIds.Time, cancellationToken);
    }

    public async Task<IReadOnlyList<IdResult>?> GetResultsAsync(Guid ingestionId, int afterPosition, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        using var session = await database.Readers.RentAsync(cancellationToken);

        // The row at position -1 says the ingestion exists, so an unknown id and a page past the end differ.
        var command = session.Command("""
            WITH i AS (SELECT seq FROM ingestions WHERE id = $id)
            SELECT -1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM i
            UNION ALL
            SELECT * FROM (
                SELECT r.position, r.id, r.state, r.http_status, r.body, r.truncated, r.attempts, r.error, r.fetched_at, r.next_attempt_at
                FROM i JOIN results r ON r.ingestion_seq = i.seq
                WHERE r.position > $after
                ORDER BY r.position
                LIMIT $limit)
            """, "$id", "$after", "$limit");
        command.Parameters[0].Value = SqliteIds.Bytes(ingestionId);
        command.Parameters[1].Value = afterPosition;
        command.Parameters[2].Value = limit;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await IdResultRows.ReadAsync(reader, SqliteIds.Time, cancellationToken);
    }

    public async Task ProbeAsync(CancellationToken cancellationToken)
    {
        // A fresh connection that may not create the file: a deleted or unmounted database fails here,
        // where pooled connections would go on reading a file that is no longer there.
        var builder = new SqliteConnectionStringBuilder(database.ConnectionString) { Pooling = false, Mode = SqliteOpenMode.ReadWrite };
        await using var connection = new SqliteConnection(builder.ConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM schema_migrations";
        await command.ExecuteScalarAsync(cancellationToken);
    }
}
