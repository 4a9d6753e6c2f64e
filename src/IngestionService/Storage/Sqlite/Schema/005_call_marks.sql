-- What each call of a window came to, for the window log: one byte per id of the run, in the order of
-- `ids` (0 succeeded, 1 failed and retrying, 2 failed for good, 3 refused for quota). Written when the
-- window completes; null while it runs, when it was abandoned, and for windows from before this column.
ALTER TABLE window_items ADD COLUMN marks BLOB;
