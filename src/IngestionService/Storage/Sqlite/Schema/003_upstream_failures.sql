-- Real upstreams fail. Ids to retry wait in `requeued` until their next attempt; `results` holds each
-- called id's latest outcome (succeeded, retrying or failed) with its attempts and error; a window whose
-- answers said the quota is gone (429) pauses every later window until `paused_until`; and idempotency
-- keys map a client's retried POST to the ingestion it already created.
ALTER TABLE ingestions ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;   -- positions failed for good (also in completed)
ALTER TABLE requeued ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0; -- unix ms: not called again before
ALTER TABLE windows ADD COLUMN paused_until INTEGER;                   -- unix ms: no window starts before

-- Rebuilt rather than altered, because a call that got no answer has no body.
CREATE TABLE results_v3 (
    ingestion_seq   INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    id              INTEGER NOT NULL,
    state           INTEGER NOT NULL,             -- 0 succeeded, 1 retrying, 2 failed
    http_status     INTEGER,                      -- null: no HTTP answer (timeout, refused) or simulated
    body            TEXT,                         -- cut at Upstream:MaxBodyBytes
    truncated       INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL,             -- calls made for this position
    throttled       INTEGER NOT NULL DEFAULT 0,   -- of which refused for quota (not counted as failures)
    error           TEXT,
    fetched_at      INTEGER NOT NULL,             -- unix ms, the window's finish
    next_attempt_at INTEGER,                      -- unix ms, while retrying
    window_seq      INTEGER NOT NULL,
    PRIMARY KEY (ingestion_seq, position)
) WITHOUT ROWID;
INSERT INTO results_v3 (ingestion_seq, position, id, state, body, attempts, fetched_at, window_seq)
SELECT ingestion_seq, position, id, 0, body, 1, fetched_at, window_seq FROM results;
DROP TABLE results;
ALTER TABLE results_v3 RENAME TO results;

-- The failed positions of an ingestion, for its status, without reading its other results.
CREATE INDEX results_failed ON results (ingestion_seq, position) WHERE state = 2;

CREATE TABLE idempotency_keys (
    key          TEXT    PRIMARY KEY,
    request_hash BLOB    NOT NULL,                -- SHA-256 of the parsed request (priority and ids)
    ingestion_id BLOB    NOT NULL,
    expires_at   INTEGER NOT NULL                 -- unix ms
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
