-- An operator's pause of the queue, on the limiter row every claim of every instance locks and reads
-- (see Storage/Sqlite/Schema/006_queue_pause.sql): while queue_paused_at is set no window is admitted.
ALTER TABLE limiter
    ADD COLUMN queue_paused_at timestamptz,
    ADD COLUMN queue_pause_reason text;
