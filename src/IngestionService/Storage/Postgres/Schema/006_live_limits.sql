-- An operator's changes of the rate limit (see Storage/Sqlite/Schema/008_live_limits.sql): the newest row
-- is in force, read by every claim of every instance under the limiter lock. The limiter row and each
-- window keep the Window in force at its start, which spaces the next start with the one in force then.
CREATE TABLE limit_changes (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    changed_at timestamptz NOT NULL,
    batch_size integer,            -- null: back to the configuration
    window_ms  integer
);

ALTER TABLE windows ADD COLUMN window_ms integer, ADD COLUMN batch_size integer;
ALTER TABLE window_items ADD COLUMN priority smallint;   -- the priority the run was taken at; null before this
ALTER TABLE limiter ADD COLUMN last_window_ms integer;
