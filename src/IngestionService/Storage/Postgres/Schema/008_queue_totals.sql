-- The ids ahead of a waiting ingestion and the queue's depth in constant time, counted as the SQLite store
-- counts them (see Scheduling/QueueTotals.cs and Storage/Sqlite/Schema/002_ids_before.sql): per-priority
-- running totals of ids enqueued and of ids started (cancelled and expired ones count as started), kept
-- in the transactions that change them, and each ingestion's ids of its priority enqueued before it.
-- Until now every status read summed over every waiting ingestion ahead, and the depth over the queue.
--
-- Every enqueue takes this row's lock before it stamps its created time, so the ingestions of a priority
-- commit in their queue order and `ids_before` is exact; claims, cancels and moves take it after the
-- limiter row's lock, always in that order. Purged ingestions stay counted in both totals (they were
-- finished: enqueued and started alike), so the retention never touches this row.
CREATE TABLE queue_totals (
    id              integer     PRIMARY KEY CHECK (id = 1),
    enqueued        bigint[]    NOT NULL,   -- by priority: [1] HIGH, [2] MEDIUM, [3] LOW
    started         bigint[]    NOT NULL,
    last_created_at timestamptz NOT NULL    -- created times never go backwards, even if the clock does
);

INSERT INTO queue_totals (id, enqueued, started, last_created_at)
SELECT 1, array_agg(coalesce(t.enqueued, 0) ORDER BY p.priority), array_agg(coalesce(t.started, 0) ORDER BY p.priority),
       coalesce((SELECT max(created_at) FROM ingestions), '-infinity')
FROM generate_series(0, 2) AS p(priority)
LEFT JOIN (SELECT priority, sum(total)::bigint AS enqueued, sum(started)::bigint AS started FROM ingestions GROUP BY priority) t
    ON t.priority = p.priority;

-- Per priority: its totals and its ids handed back that wait again (counted from `requeued`, which holds a
-- few windows' worth, walked from its side: one look-up of each one's ingestion, never a scan of the queue).
CREATE FUNCTION queue_totals_by_priority() RETURNS TABLE (priority bigint, enqueued bigint, started bigint, requeued bigint)
LANGUAGE sql STABLE AS $$
    WITH handed_back AS (
        SELECT r.priority FROM requeued q, LATERAL (SELECT r.priority FROM ingestions r WHERE r.seq = q.ingestion_seq OFFSET 0) r)
    SELECT (p - 1)::bigint, t.enqueued[p], t.started[p], (SELECT count(*) FROM handed_back h WHERE h.priority = p - 1)
    FROM queue_totals t CROSS JOIN generate_series(1, 3) AS p
    WHERE t.id = 1
$$;

ALTER TABLE ingestions ADD COLUMN ids_before bigint NOT NULL DEFAULT 0;

-- Cancelled tails behind a waiting ingestion, which the status read adds back (as in SQLite's 007).
CREATE INDEX ingestions_cancelled ON ingestions (priority, created_at, seq) WHERE cancelled_from < total;

-- Sets `ids_before` of every waiting ingestion of the given priorities so that QueueTotals.IdsAhead gives
-- the unstarted ids ahead of it now: the started total, plus the unstarted ids of the waiting ingestions
-- ahead, less the cancelled tails behind (which the read adds back). Run here for the rows that exist and
-- by every move to another priority (which can land an ingestion ahead of ids already started), in the
-- move's transaction, after the totals have moved. One pass over the waiting ingestions of those priorities.
CREATE FUNCTION recount_ids_before(priorities smallint[]) RETURNS void LANGUAGE sql AS $$
    WITH frontier AS (
        SELECT DISTINCT ON (priority) priority, created_at, seq FROM ingestions
        WHERE priority = ANY (priorities) AND started < total ORDER BY priority, created_at, seq),
    considered AS (
        SELECT seq, priority, created_at, true AS waiting, (total - started)::bigint AS unstarted, 0::bigint AS tail
        FROM ingestions WHERE priority = ANY (priorities) AND started < total
        UNION ALL
        -- Only tails behind the first waiting ingestion can be behind a waiting one: older ones are not read.
        SELECT i.seq, i.priority, i.created_at, false, 0, (i.total - i.cancelled_from)::bigint
        FROM ingestions i JOIN frontier f ON f.priority = i.priority
        WHERE i.cancelled_from < i.total AND (i.created_at, i.seq) > (f.created_at, f.seq)),
    ordered AS (
        SELECT seq, priority, waiting,
               coalesce(sum(unstarted) OVER (PARTITION BY priority ORDER BY created_at, seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS unstarted_ahead,
               coalesce(sum(tail) OVER (PARTITION BY priority ORDER BY created_at, seq ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS tails_behind
        FROM considered)
    UPDATE ingestions i SET ids_before = t.started[o.priority + 1] + o.unstarted_ahead - o.tails_behind
    FROM ordered o, queue_totals t
    WHERE o.seq = i.seq AND o.waiting AND t.id = 1
$$;

SELECT recount_ids_before(ARRAY[0, 1, 2]::smallint[]);
