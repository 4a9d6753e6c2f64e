-- Retention (Ingestion:Retention), as in the SQLite store's 009_retention.sql: `finished_at` is set in
-- the transaction in which an ingestion's last id reaches a final state; the partial index is the
-- sweeper's queue. The ids ahead are summed over waiting ingestions here, so no purged totals are kept.
ALTER TABLE ingestions ADD COLUMN finished_at timestamptz;

UPDATE ingestions i SET finished_at = greatest(
        i.cancelled_at,
        coalesce((SELECT max(r.fetched_at) FROM results r WHERE r.ingestion_seq = i.seq), i.created_at))
WHERE i.completed >= coalesce(i.cancelled_from, i.total);

CREATE INDEX ingestions_finished ON ingestions (finished_at) WHERE finished_at IS NOT NULL;
