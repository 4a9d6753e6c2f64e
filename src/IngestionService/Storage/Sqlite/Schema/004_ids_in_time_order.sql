-- Ingestion ids are UUID version 7, which sort by their created time when stored in network (big-endian)
-- byte order. They were stored in .NET's mixed-endian order, which put the low bytes of the timestamp
-- first: consecutive ids landed all over the id index instead of on its last page, so every commit
-- dirtied a different page and every checkpoint copied thousands of them (a growing cost under load).
-- Reordered here in place; the index follows the updated rows. Positions: .NET's bytes 1-4 are the first
-- field reversed, 5-6 and 7-8 the next two fields reversed, 9-16 unchanged. `||` makes text of its
-- operands (the same bytes), so the result is cast back: a text value never equals a blob.
UPDATE ingestions SET id = CAST(
    substr(id, 4, 1) || substr(id, 3, 1) || substr(id, 2, 1) || substr(id, 1, 1) ||
    substr(id, 6, 1) || substr(id, 5, 1) || substr(id, 8, 1) || substr(id, 7, 1) || substr(id, 9, 8) AS BLOB);

UPDATE idempotency_keys SET ingestion_id = CAST(
    substr(ingestion_id, 4, 1) || substr(ingestion_id, 3, 1) || substr(ingestion_id, 2, 1) || substr(ingestion_id, 1, 1) ||
    substr(ingestion_id, 6, 1) || substr(ingestion_id, 5, 1) || substr(ingestion_id, 8, 1) || substr(ingestion_id, 7, 1) || substr(ingestion_id, 9, 8) AS BLOB);
