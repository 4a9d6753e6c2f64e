-- Retention (Ingestion:Retention): finished work is deleted once it is older than the retention.
-- `finished_at` is set in the transaction in which an ingestion's last id reaches a final state (its
-- last result stored, or its tail cancelled with nothing in flight); null while any id waits, runs or
-- retries. The partial index is the sweeper's queue, oldest first.
ALTER TABLE ingestions ADD COLUMN finished_at INTEGER; -- unix ms

UPDATE ingestions SET finished_at = max(
        coalesce(cancelled_at, 0),
        coalesce((SELECT max(r.fetched_at) FROM results r WHERE r.ingestion_seq = ingestions.seq), created_at))
WHERE completed >= coalesce(cancelled_from, total);

CREATE INDEX ingestions_finished ON ingestions (finished_at) WHERE finished_at IS NOT NULL;

-- The ids of purged ingestions, per priority. The running totals (enqueued and started ids, from which
-- the ids ahead of a waiting ingestion are counted) are read from the ingestions at start-up; the purged
-- ones still count in both.
CREATE TABLE purged_totals (
    priority INTEGER PRIMARY KEY,
    ids      INTEGER NOT NULL
);
