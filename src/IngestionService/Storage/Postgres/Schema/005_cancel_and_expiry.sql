-- Cancelled and expired work (see Storage/Sqlite/Schema/007_cancel_and_expiry.sql for the model): a
-- cancel moves `started` to `total`, so the pending index and the claim no longer see the ids, and
-- `cancelled_from` keeps how many really were handed out.
ALTER TABLE ingestions
    ADD COLUMN not_after      timestamptz,
    ADD COLUMN cancelled_from integer,
    ADD COLUMN cancelled_at   timestamptz,
    ADD COLUMN cancel_reason  smallint;                      -- 0 requested, 1 expired

CREATE INDEX ingestions_expiring ON ingestions (not_after) WHERE started < total AND not_after IS NOT NULL;
