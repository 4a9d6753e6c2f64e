-- What each call of a window came to, for the window log (see Storage/Sqlite/Schema/005_call_marks.sql):
-- one byte per id of the run, in the order of `ids`; null while it runs or when it was abandoned.
ALTER TABLE window_items ADD COLUMN marks bytea;
