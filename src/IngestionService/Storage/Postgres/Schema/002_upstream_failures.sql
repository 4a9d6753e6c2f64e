-- Real upstreams fail (see Storage/Sqlite/Schema/003_upstream_failures.sql for the same model): retries
-- wait in `requeued` until their next attempt, `results` holds each called id's latest outcome, the
-- limiter row carries the upstream's pause for every instance, and idempotency keys map a client's
-- retried POST to the ingestion it already created.
ALTER TABLE ingestions ADD COLUMN failed integer NOT NULL DEFAULT 0;
ALTER TABLE requeued ADD COLUMN not_before timestamptz NOT NULL DEFAULT '-infinity';
ALTER TABLE windows ADD COLUMN paused_until timestamptz;
ALTER TABLE limiter ADD COLUMN paused_until timestamptz;

ALTER TABLE results
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN state smallint NOT NULL DEFAULT 0,             -- 0 succeeded, 1 retrying, 2 failed
    ADD COLUMN http_status integer,
    ADD COLUMN truncated boolean NOT NULL DEFAULT false,
    ADD COLUMN attempts integer NOT NULL DEFAULT 1,
    ADD COLUMN throttled integer NOT NULL DEFAULT 0,
    ADD COLUMN error text,
    ADD COLUMN next_attempt_at timestamptz;
CREATE INDEX results_failed ON results (ingestion_seq, position) WHERE state = 2;

CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash bytea       NOT NULL,
    ingestion_id uuid        NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
