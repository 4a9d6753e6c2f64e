-- One row per accepted request. The ids live in one blob (int32, little endian) and the progress in
-- two counters: within a request ids always start in order, so [0, started) have been handed to a
-- window and the rest wait. This keeps a 100 000-id request one row, not 100 000.
CREATE TABLE ingestions (
    seq         INTEGER PRIMARY KEY,          -- arrival sequence (the rowid)
    id          BLOB    NOT NULL UNIQUE,      -- the public ingestion_id, 16 bytes
    priority    INTEGER NOT NULL,             -- 0 HIGH, 1 MEDIUM, 2 LOW
    created_at  INTEGER NOT NULL,             -- unix milliseconds
    batch_size  INTEGER NOT NULL,             -- chunking of the status answer, fixed at creation
    total       INTEGER NOT NULL,
    started     INTEGER NOT NULL DEFAULT 0,
    completed   INTEGER NOT NULL DEFAULT 0,   -- how many positions have a stored result
    ids         BLOB    NOT NULL
);

-- The global order of pending work. Partial, so it only ever holds ingestions with ids waiting and
-- choosing the next window costs the same however much has been processed.
CREATE INDEX ingestions_pending ON ingestions (priority, created_at, seq) WHERE started < total;

-- The window log: every window ever started, kept for the rate limit across restarts and for audit.
CREATE TABLE windows (
    seq         INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,             -- unix milliseconds
    finished_at INTEGER,
    state       INTEGER NOT NULL,             -- 0 running, 1 completed, 2 abandoned
    id_count    INTEGER NOT NULL
);

CREATE INDEX windows_running ON windows (state) WHERE state = 0;

-- Which positions of which ingestion a window took, as runs of consecutive positions.
CREATE TABLE window_items (
    window_seq    INTEGER NOT NULL,
    ingestion_seq INTEGER NOT NULL,
    first_pos     INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    ids           BLOB    NOT NULL,           -- the ids of the run, int32 little endian
    PRIMARY KEY (ingestion_seq, first_pos, window_seq)
) WITHOUT ROWID;

CREATE INDEX window_items_by_window ON window_items (window_seq);

-- Positions handed back to the queue by an abandoned window (a crash mid-fetch): fetched again,
-- at their original place in the global order.
CREATE TABLE requeued (
    ingestion_seq INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    PRIMARY KEY (ingestion_seq, position)
) WITHOUT ROWID;

-- What the upstream answered, per position.
CREATE TABLE results (
    ingestion_seq INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    id            INTEGER NOT NULL,
    body          TEXT    NOT NULL,
    fetched_at    INTEGER NOT NULL,
    window_seq    INTEGER NOT NULL,
    PRIMARY KEY (ingestion_seq, position)
) WITHOUT ROWID;
