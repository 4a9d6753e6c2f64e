using IngestionService.Ingest;
using IngestionService.Scheduling;

namespace IngestionService.Storage.Postgres;

/// <summary>
/// The <c>queue_totals</c> row (see <c>Schema/008_queue_totals.sql</c>): per-priority running totals of ids
/// enqueued and started, from which <see cref="QueueTotals"/> counts the depth and the ids ahead in
/// constant time. Every transaction that enqueues, starts, cancels or moves ids changes them with
/// <see cref="Add"/>, under the row's lock; enqueues take that lock before they stamp their created time.
/// </summary>
internal static class PostgresTotals
{
    /// <summary>
    /// One row per priority: the priority, its ids enqueued and started, and its ids handed back that wait
    /// again (see <c>queue_totals_by_priority()</c> in the schema).
    /// </summary>
    public const string ByPriority = "SELECT priority, enqueued, started, requeued FROM queue_totals_by_priority()";

    /// <summary>An assignment that adds the per-priority deltas of the bigint[] parameter <paramref name="deltas"/> to <paramref name="column"/>.</summary>
    public static string Add(string column, string deltas) => Change(column, priority => $"{deltas}[{priority + 1}]");

    /// <summary>
    /// A statement for a data-modifying CTE that adds the ids of <paramref name="cte"/> (its columns
    /// <c>priority</c> and <c>ids</c>, one row per ingestion) to the started totals: cancelled and expired
    /// tails leave the queue as started ids do. Touches the row only if the CTE has rows.
    /// </summary>
    public static string StartCancelled(string cte) =>
        $"UPDATE queue_totals SET {Change("started", priority => $"(SELECT coalesce(sum(ids), 0) FROM {cte} WHERE priority = {priority})")} WHERE id = 1 AND EXISTS (SELECT 1 FROM {cte})";

    /// <summary>
    /// An assignment that moves <paramref name="amount"/>, an expression of an ingestion moved from priority
    /// <paramref name="from"/> to <paramref name="to"/> (both SQL expressions), between their totals in
    /// <paramref name="column"/> of <c>queue_totals</c> named <paramref name="table"/> (the statement's other
    /// tables may have columns of the same names).
    /// </summary>
    public static string Move(string column, string amount, string from, string to, string table) =>
        Change(column, priority => $"CASE {priority} WHEN {to} THEN {amount} WHEN {from} THEN -{amount} ELSE 0 END", $"{table}.");

    /// <summary>The one shape of every change of a total: <c>column = ARRAY[column[1] + amount(0), ...]</c>, one amount per priority.</summary>
    private static string Change(string column, Func<int, string> amountOf, string qualifier = "") =>
        $"{column} = ARRAY[" + string.Join(", ", Enumerable.Range(0, 3).Select(priority => $"{qualifier}{column}[{priority + 1}] + {amountOf(priority)}")) + "]";

    /// <summary>The per-priority deltas of ids, as the bigint[] that <see cref="Add"/> adds.</summary>
    public static long[] Deltas<T>(IEnumerable<T> items, Func<T, Priority> priority, Func<T, long> count)
    {
        var deltas = new long[3];
        foreach (var item in items)
        {
            deltas[(int)priority(item)] += count(item);
        }

        return deltas;
    }

    /// <summary>Sets a priority's totals from a row of <see cref="ByPriority"/> read at <paramref name="ordinal"/>.</summary>
    public static void Read(QueueTotals totals, System.Data.Common.DbDataReader reader, int ordinal) =>
        totals.Set((Priority)reader.GetInt64(ordinal), reader.GetInt64(ordinal + 1), reader.GetInt64(ordinal + 2), reader.GetInt64(ordinal + 3));
}
