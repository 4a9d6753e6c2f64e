-- An operator's pause of the queue (POST /queue/pause, /queue/resume): one row, always there. While
-- paused_at is set no window is admitted; the pause outlives restarts like everything else here.
CREATE TABLE queue_control (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    paused_at    INTEGER,                     -- unix ms; null while the queue runs
    pause_reason TEXT
);
INSERT INTO queue_control (id) VALUES (1);
