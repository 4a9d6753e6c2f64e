-- Webhooks, as in the SQLite store's 010_webhooks.sql: the event row is written by the trigger, in the
-- transaction that stamps `finished_at`, with every field of the payload. One instance delivers each
-- event: an attempt takes the row's lease (`lease_until`, claimed with FOR UPDATE SKIP LOCKED); a row
-- whose lease ran out (its instance died mid-attempt) is due again.
ALTER TABLE ingestions ADD COLUMN callback_url text, ADD COLUMN status_url text, ADD COLUMN trace_parent text;

CREATE TABLE outbox (
    seq           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ingestion_seq bigint      NOT NULL,
    ingestion_id  uuid        NOT NULL,
    callback_url  text        NOT NULL,
    status_url    text        NOT NULL,
    priority      smallint    NOT NULL,
    created_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL,
    total         integer     NOT NULL,
    completed     integer     NOT NULL,
    failed        integer     NOT NULL,
    cancelled     integer     NOT NULL,
    state         smallint    NOT NULL DEFAULT 0,   -- 0 pending, 1 delivered, 2 given up (MaxAge), 3 stopped (410 Gone)
    attempts      integer     NOT NULL DEFAULT 0,
    next_attempt  timestamptz NOT NULL,
    lease_until   timestamptz,
    done_at       timestamptz,
    trace_parent  text
);

CREATE INDEX outbox_due ON outbox (next_attempt) WHERE state = 0;
CREATE INDEX outbox_ingestion ON outbox (ingestion_id);
CREATE INDEX outbox_done ON outbox (done_at) WHERE done_at IS NOT NULL;

CREATE TABLE delivery_attempts (
    outbox_seq  bigint      NOT NULL,
    attempt     integer     NOT NULL,
    at          timestamptz NOT NULL,
    duration_ms integer     NOT NULL,
    http_status integer,
    error       text,
    PRIMARY KEY (outbox_seq, attempt)
);

CREATE FUNCTION ingestion_finished_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (ingestion_seq, ingestion_id, callback_url, status_url, priority, created_at, finished_at,
                        total, completed, failed, cancelled, next_attempt, trace_parent)
    VALUES (new.seq, new.id, new.callback_url, new.status_url, new.priority, new.created_at, new.finished_at,
            new.total, new.completed, new.failed,
            CASE WHEN new.cancelled_from IS NULL THEN 0 ELSE new.total - new.cancelled_from END, new.finished_at, new.trace_parent);
    RETURN NULL;
END $$;

CREATE TRIGGER ingestion_finished_event AFTER UPDATE OF finished_at ON ingestions
FOR EACH ROW WHEN (old.finished_at IS NULL AND new.finished_at IS NOT NULL AND new.callback_url IS NOT NULL)
EXECUTE FUNCTION ingestion_finished_event();
