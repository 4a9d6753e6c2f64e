-- An operator's changes of the rate limit (PUT and DELETE /limits), oldest first: the newest row is in
-- force, and one without a batch size went back to Ingestion:BatchSize and Ingestion:Window. Every
-- admission reads it in its own transaction, so a change applies from the next one, after any restart.
CREATE TABLE limit_changes (
    seq        INTEGER PRIMARY KEY,
    changed_at INTEGER NOT NULL,   -- unix ms
    batch_size INTEGER,            -- null: back to the configuration
    window_ms  INTEGER
);

-- The limit in force when each window started: the next start waits the longer of its Window and the
-- Window in force then, so a change never crowds a span beyond the stricter of the two limits; and the
-- compliance figure judges each window by its own limit. Null for windows from before this.
ALTER TABLE windows ADD COLUMN window_ms INTEGER;
ALTER TABLE windows ADD COLUMN batch_size INTEGER;

-- The priority each run was taken at: an operator may move an ingestion later (PATCH /ingestions/{id}),
-- and the window log shows what happened then. Null for runs from before this: the ingestion's counts.
ALTER TABLE window_items ADD COLUMN priority INTEGER;
