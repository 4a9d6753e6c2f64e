using System.Data.Common;
using IngestionService.Ingest;
using IngestionService.Scheduling;
using Npgsql;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// Status reads, grouped: the reads that arrive while others are in flight share the next statement,
/// so a busy service pays one round trip, one wake-up and one socket read per group instead of per read;
/// a lone read goes at once. Two groups may be in flight, so the database works on one while the next
/// gathers. Each group runs on a listening session (<see cref="PostgresStatusSessions"/>) and answers
/// from memory what no commit has touched since it was read (<see cref="PostgresStatusMemo"/>): the
/// group's statement reads, in one call of <c>ingestion_status()</c> (<c>Schema/009_status_read.sql</c>)
/// over an array of ids, only the ingestions memory lacks, and even when it lacks none a statement runs,
/// so every notification sent before it has been heard when the group answers. Each answer comes from one snapshot.
/// </summary>
public sealed class PostgresStatusReads : IAsyncDisposable
{
    private const int MaxReadsPerStatement = 128;
    private const int ConcurrentReads = 2;

    /// <summary>
    /// Rows of ingestion <c>ord</c> (1-based, in the order of the ids) and, at <c>ord</c> 0, what every one
    /// of them shares: the limiter's pauses (kind 7) and the running totals by priority (kind 6). Whatever
    /// this reads must be covered by the triggers of <c>Schema/011_status_notify.sql</c>, or answers from
    /// memory would miss its changes.
    /// </summary>
    private const string Sql = """
        SELECT 0, 7::smallint, (l.queue_paused_at IS NOT NULL)::int::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, l.paused_until, NULL::timestamptz, NULL::bytea
        FROM limiter l WHERE l.id = 1
        UNION ALL
        SELECT 0, 6::smallint, t.priority, t.enqueued, t.started, t.requeued, NULL, NULL, NULL, NULL FROM queue_totals_by_priority() t
        UNION ALL
        SELECT r.ord::integer, s.kind, s.a, s.b, s.c, s.d, s.e, s.t1, s.t2, s.blob
        FROM unnest($1::uuid[]) WITH ORDINALITY AS r(id, ord), LATERAL ingestion_status(r.id) AS s
        """;

    private readonly PostgresStatusMemo _memo = new();
    private readonly PostgresStatusSessions _sessions;
    private readonly PostgresGroups<Guid, IngestionSnapshot?> _groups;

    private long _fromMemory;

    /// <summary>Status reads on <paramref name="dataSource"/>; <paramref name="quietAfter"/> is how long a listening session may go unused before it stops listening.</summary>
    public PostgresStatusReads(NpgsqlDataSource dataSource, TimeSpan? quietAfter = null)
    {
        _sessions = new PostgresStatusSessions(dataSource, _memo, ConcurrentReads, quietAfter);
        _groups = new PostgresGroups<Guid, IngestionSnapshot?>(ids => _sessions.RunAsync(session => ReadGroupAsync(session, ids)), MaxReadsPerStatement, ConcurrentReads);
    }

    /// <summary>How many reads were answered from memory so far.</summary>
    public long AnsweredFromMemory => Interlocked.Read(ref _fromMemory);

    /// <summary>The group is read whoever stops waiting: a caller that gives up only stops waiting for it.</summary>
    public Task<IngestionSnapshot?> ReadAsync(Guid ingestionId, CancellationToken cancellationToken) =>
        _groups.SubmitAsync(ingestionId).WaitAsync(cancellationToken);

    private async Task<IngestionSnapshot?[]> ReadGroupAsync(NpgsqlConnection session, IReadOnlyList<Guid> ingestionIds)
    {
        var answers = new IngestionSnapshot?[ingestionIds.Count];
        var remembered = new List<(int Index, int Generation)>();
        var missing = new List<int>();
        var generations = _memo.Current;
        for (var i = 0; i < ingestionIds.Count; i++)
        {
            if (generations.TryGet(ingestionIds[i], out answers[i], out var which))
            {
                remembered.Add((i, which));
            }
            else
            {
                missing.Add(i);
            }
        }

        await ReadAsync(session, ingestionIds, missing, answers, generations);

        // Everything committed before the statement began has been heard: what it touched is read again.
        var touched = new List<int>();
        foreach (var (index, generation) in remembered)
        {
            if (!generations.IsOpen(generation))
            {
                touched.Add(index);
            }
        }

        Interlocked.Add(ref _fromMemory, remembered.Count - touched.Count);
        if (touched.Count > 0)
        {
            await ReadAsync(session, ingestionIds, touched, answers, _memo.Current);
        }

        return answers;
    }

    /// <summary>
    /// Reads the ingestions at <paramref name="indexes"/> into <paramref name="answers"/> and keeps them in
    /// <paramref name="generations"/> (taken before the statement); with none to read, only the fence runs.
    /// </summary>
    private static async Task ReadAsync(NpgsqlConnection session, IReadOnlyList<Guid> ingestionIds, List<int> indexes, IngestionSnapshot?[] answers, PostgresStatusMemo.Generations generations)
    {
        if (indexes.Count == 0)
        {
            await using var fence = new NpgsqlCommand(PostgresStatusSessions.Fence, session);
            await fence.ExecuteNonQueryAsync();
            return;
        }

        await using var command = new NpgsqlCommand(Sql, session);
        var ids = new Guid[indexes.Count];
        for (var k = 0; k < ids.Length; k++)
        {
            ids[k] = ingestionIds[indexes[k]];
        }

        command.Parameters.AddWithValue(ids);
        var builders = new SnapshotRows?[indexes.Count];
        var shared = new SnapshotRows();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var ord = reader.GetInt32(0);
                (ord == 0 ? shared : builders[ord - 1] ??= new SnapshotRows()).Add(reader);
            }
        }

        for (var k = 0; k < ids.Length; k++)
        {
            var snapshot = answers[indexes[k]] = builders[k]?.Build(ids[k], shared);
            generations.Keep(ids[k], snapshot);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _groups.DisposeAsync();
        await _sessions.DisposeAsync();
    }

    /// <summary>The rows of one ingestion, told apart by their kind (column 1), gathered into its snapshot.</summary>
    private sealed class SnapshotRows
    {
        private readonly List<(WindowSpan Span, long Window)> _spans = [];
        private readonly List<int> _requeued = [];
        private Priority _priority;
        private DateTimeOffset _createdAt;
        private int _batchSize, _started, _completed;
        private int[]? _ids;
        private DateTimeOffset? _notAfter, _pausedUntil;
        private List<int>? _failed;
        private long? _idsBefore;
        private long _requeuedAtOrBefore;
        private QueueTotals? _totals;
        private Cancellation? _cancel;
        private bool _queuePaused;

        public void Add(DbDataReader reader)
        {
            DateTimeOffset? Time(int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetFieldValue<DateTimeOffset>(ordinal);
            int Int(int ordinal) => (int)reader.GetInt64(ordinal);
            switch (reader.GetInt16(1))
            {
                case 0:
                    (_priority, _batchSize, _started, _completed) = ((Priority)Int(2), Int(3), Int(4), Int(5));
                    if (Int(6) > 0)
                    {
                        _failed ??= [];
                    }

                    _createdAt = Time(7)!.Value;
                    _notAfter = Time(8);
                    _ids = IdBlob.Unpack(reader.GetFieldValue<byte[]>(9));
                    break;
                case 1:
                    _spans.Add((new WindowSpan(Int(2), Int(3), Time(7)!.Value, Time(8), (WindowState)Int(4)), reader.GetInt64(5)));
                    break;
                case 2:
                    _requeued.Add(Int(2));
                    break;
                case 3:
                    (_idsBefore, _requeuedAtOrBefore) = (reader.GetInt64(2), reader.GetInt64(3));
                    break;
                case 5:
                    _cancel = new Cancellation(Int(2), Time(7)!.Value, (CancelReason)Int(3));
                    break;
                case 6:
                    PostgresTotals.Read(_totals ??= new QueueTotals(), reader, 2);
                    break;
                case 7:
                    (_queuePaused, _pausedUntil) = (Int(2) == 1, Time(7));
                    break;
                default:
                    (_failed ??= []).Add(Int(2));
                    break;
            }
        }

        /// <summary>The snapshot, with the pauses and the totals of <paramref name="shared"/>; null for an unknown id.</summary>
        public IngestionSnapshot? Build(Guid ingestionId, SnapshotRows shared)
        {
            if (_ids is null)
            {
                return null;
            }

            // Rows come in no promised order: the lists are put in theirs here.
            _spans.Sort((a, b) => a.Span.FirstPosition != b.Span.FirstPosition ? a.Span.FirstPosition.CompareTo(b.Span.FirstPosition) : a.Window.CompareTo(b.Window));
            _requeued.Sort();
            _failed?.Sort();
            var idsAhead = _idsBefore is { } before && shared._totals is { } totals ? totals.IdsAhead(_priority, before, _requeuedAtOrBefore) : 0;
            return new IngestionSnapshot(ingestionId, _priority, _createdAt, _batchSize, _ids, _started, _completed,
                _spans.ConvertAll(s => s.Span), _requeued, idsAhead, _failed, shared._pausedUntil, shared._queuePaused, _cancel, _notAfter);
        }
    }
}
