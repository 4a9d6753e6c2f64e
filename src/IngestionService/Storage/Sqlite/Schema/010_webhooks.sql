-- Webhooks (Notifications:*): an ingestion may carry a callback URL (its own `callback_url`, or the
-- configured Notifications:Url, fixed at submission) and the status URL the event links to. The event
-- row is written by the trigger below, in the very transaction that makes the ingestion final (the one
-- that stamps `finished_at`: its last result stored, its tail cancelled or expired with nothing in
-- flight), so a crash can neither lose an event nor invent one. The row carries every field of the
-- payload, so a delivery never depends on the ingestion still being there. `trace_parent` is the W3C
-- trace context of the submitting request (when tracing is on), linked from the windows and deliveries.
ALTER TABLE ingestions ADD COLUMN callback_url TEXT;
ALTER TABLE ingestions ADD COLUMN status_url   TEXT;
ALTER TABLE ingestions ADD COLUMN trace_parent TEXT;

CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY,
    ingestion_seq INTEGER NOT NULL,
    ingestion_id  BLOB    NOT NULL,           -- 16 bytes
    callback_url  TEXT    NOT NULL,
    status_url    TEXT    NOT NULL,
    priority      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,           -- unix ms: the ingestion's
    finished_at   INTEGER NOT NULL,           -- unix ms: the event's time
    total         INTEGER NOT NULL,
    completed     INTEGER NOT NULL,           -- ids with a final result (failed ones included)
    failed        INTEGER NOT NULL,
    cancelled     INTEGER NOT NULL,
    state         INTEGER NOT NULL DEFAULT 0, -- 0 pending, 1 delivered, 2 given up (MaxAge), 3 stopped (410 Gone)
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL,           -- unix ms
    lease_until   INTEGER,                    -- unix ms: an attempt in flight until then
    done_at       INTEGER,                    -- unix ms: delivered, given up or stopped
    trace_parent  TEXT                        -- the submission's trace context
);

CREATE INDEX outbox_due ON outbox (next_attempt) WHERE state = 0;
CREATE INDEX outbox_ingestion ON outbox (ingestion_id);
CREATE INDEX outbox_done ON outbox (done_at) WHERE done_at IS NOT NULL;

-- Every attempt, for GET /ingestions/{id}/deliveries.
CREATE TABLE delivery_attempts (
    outbox_seq  INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,             -- unix ms
    duration_ms INTEGER NOT NULL,
    http_status INTEGER,                      -- null when no answer came (error says why)
    error       TEXT,
    PRIMARY KEY (outbox_seq, attempt)
) WITHOUT ROWID;

CREATE TRIGGER ingestion_finished_event AFTER UPDATE OF finished_at ON ingestions
WHEN old.finished_at IS NULL AND new.finished_at IS NOT NULL AND new.callback_url IS NOT NULL
BEGIN
    INSERT INTO outbox (ingestion_seq, ingestion_id, callback_url, status_url, priority, created_at, finished_at,
                        total, completed, failed, cancelled, next_attempt, trace_parent)
    VALUES (new.seq, new.id, new.callback_url, new.status_url, new.priority, new.created_at, new.finished_at,
            new.total, new.completed, new.failed,
            CASE WHEN new.cancelled_from IS NULL THEN 0 ELSE new.total - new.cancelled_from END, new.finished_at, new.trace_parent);
END;
