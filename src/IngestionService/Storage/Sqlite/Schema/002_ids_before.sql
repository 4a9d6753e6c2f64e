-- How many ids of the same priority were enqueued before each ingestion, in the global order. With
-- per-priority running totals kept by the (single) writer, the ids waiting ahead of any ingestion then
-- cost the same however long the queue is, instead of a scan of every ingestion ahead of it.
ALTER TABLE ingestions ADD COLUMN ids_before INTEGER NOT NULL DEFAULT 0;

WITH running AS (
    SELECT seq, coalesce(sum(total) OVER (PARTITION BY priority ORDER BY created_at, seq
                                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
    FROM ingestions
)
UPDATE ingestions SET ids_before = running.before FROM running WHERE running.seq = ingestions.seq;
