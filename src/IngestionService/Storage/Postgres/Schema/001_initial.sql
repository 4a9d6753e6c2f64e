-- The same model as the SQLite store (see Storage/Sqlite/Schema/001_initial.sql), plus what several
-- instances need to share one rate limit: the limiter row every claim locks, and an owner and a lease
-- on each running window so that a dead instance's window can be taken back.
-- Times are timestamptz from the database's clock (clock_timestamp()), in whole milliseconds like SQLite's.

-- One row per accepted request; the ids in one bytea (int32, little endian). Kept uncompressed out of
-- line (STORAGE EXTERNAL) so that substring() reads just the few ids a window takes from a large request.
CREATE TABLE ingestions (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- arrival sequence
    id          uuid        NOT NULL UNIQUE,                            -- the public ingestion_id
    priority    smallint    NOT NULL,                                   -- 0 HIGH, 1 MEDIUM, 2 LOW
    created_at  timestamptz NOT NULL,
    batch_size  integer     NOT NULL,
    total       integer     NOT NULL,
    started     integer     NOT NULL DEFAULT 0,
    completed   integer     NOT NULL DEFAULT 0,
    ids         bytea       NOT NULL
);
ALTER TABLE ingestions ALTER COLUMN ids SET STORAGE EXTERNAL;

-- The global order of pending work, holding only ingestions with ids waiting.
CREATE INDEX ingestions_pending ON ingestions (priority, created_at, seq) WHERE started < total;

-- The window log. A running window belongs to its owner (an instance) until lease_until; the owner
-- renews the lease while it fetches. Abandoned windows stay in the log: their start still counts.
CREATE TABLE windows (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    state       smallint    NOT NULL,                                   -- 0 running, 1 completed, 2 abandoned
    id_count    integer     NOT NULL,
    owner       text        NOT NULL,                                   -- host:pid:instance of the claimer
    lease_until timestamptz NOT NULL
);
CREATE INDEX windows_running ON windows (lease_until) WHERE state = 0;

CREATE TABLE window_items (
    window_seq    bigint  NOT NULL REFERENCES windows (seq),
    ingestion_seq bigint  NOT NULL REFERENCES ingestions (seq),
    first_pos     integer NOT NULL,
    count         integer NOT NULL,
    ids           bytea   NOT NULL,
    PRIMARY KEY (ingestion_seq, first_pos, window_seq)
);
CREATE INDEX window_items_by_window ON window_items (window_seq);

-- Positions handed back by an abandoned window, fetched again at their original place in the order.
CREATE TABLE requeued (
    ingestion_seq bigint  NOT NULL REFERENCES ingestions (seq),
    position      integer NOT NULL,
    PRIMARY KEY (ingestion_seq, position)
);

CREATE TABLE results (
    ingestion_seq bigint      NOT NULL REFERENCES ingestions (seq),
    position      integer     NOT NULL,
    id            integer     NOT NULL,
    body          text        NOT NULL,
    fetched_at    timestamptz NOT NULL,
    window_seq    bigint      NOT NULL REFERENCES windows (seq),
    PRIMARY KEY (ingestion_seq, position)
);

-- The one global rate limiter. Every claim locks this row first (SELECT ... FOR UPDATE), so claims from
-- all instances are serialised and each sees the window the previous one started.
CREATE TABLE limiter (
    id                integer PRIMARY KEY CHECK (id = 1),
    last_window_start timestamptz
);
INSERT INTO limiter (id, last_window_start) VALUES (1, NULL);
