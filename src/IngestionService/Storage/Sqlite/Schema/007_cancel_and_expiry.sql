-- Cancelled and expired work (POST /ingestions/{id}/cancel, POST /ingest's not_after). Only ids not yet
-- handed to a window are cancelled, and they are always the tail of their ingestion: [cancelled_from,
-- total). A cancel moves `started` to `total`, so the pending index, the claim and the running totals
-- treat them as gone from the queue; `cancelled_from` keeps how many really were handed out.
ALTER TABLE ingestions ADD COLUMN not_after      INTEGER;  -- unix ms: ids not started by then expire
ALTER TABLE ingestions ADD COLUMN cancelled_from INTEGER;  -- null unless cancelled: the first position never handed out
ALTER TABLE ingestions ADD COLUMN cancelled_at   INTEGER;  -- unix ms
ALTER TABLE ingestions ADD COLUMN cancel_reason  INTEGER;  -- 0 requested, 1 expired

-- The waiting ingestions that can expire, soonest first: each admission expires the due ones.
CREATE INDEX ingestions_expiring ON ingestions (not_after) WHERE started < total AND not_after IS NOT NULL;

-- Cancelled tails in the global order: the ids ahead of a waiting ingestion subtract the ones behind it
-- from the started total (see QueueTotals.IdsAhead).
CREATE INDEX ingestions_cancelled ON ingestions (priority, created_at, seq) WHERE cancelled_from < total;
