-- Every commit that changes what a status read shows tells the listening sessions of every instance, on the
-- channel `ingestion_status`, so each instance can answer status reads from memory until then
-- (Storage/Postgres/PostgresStatusMemo.cs). Triggers, so that no path that writes (a window's claim,
-- its end, a hand-back, a cancel, a move, an expiry, a pause, the retention sweep, and whatever comes
-- later) can forget to. The payload says what changed: 'created' for new ingestions (which change only
-- what is ahead of the ones waiting at a lower priority, and what an unknown id finds), 'changed' for
-- anything else. A notification is delivered when, and only if, its transaction commits, and PostgreSQL
-- sends one per distinct payload per transaction.
--
-- A claim the limiter refuses, or that finds nothing due, runs statements that change no row, in a
-- transaction that holds the limiter's lock: inserts and updates tell per row changed, so it tells
-- nobody. Lease renewals and call marks change nothing a status shows, and neither does the recount of
-- `ids_before` on its own (it runs only within a move, whose change of the moved ingestion tells).
-- Inserts of new ingestions and deletes (the sweep's, many rows at once) tell once per statement, from
-- a transaction that has a transaction id (one that wrote or locked a row): a poll that writes nothing
-- has none, so it tells nobody and stays a read with no commit record.
-- Whatever Storage/Postgres/PostgresStatusReads.cs reads (migration 009's ingestion_status(), the totals
-- of 008, the limiter's pauses) must stay covered here.
CREATE FUNCTION notify_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        PERFORM pg_notify('ingestion_status', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ingestions_created AFTER INSERT ON ingestions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_status_changed('created');
CREATE TRIGGER ingestions_changed
    AFTER UPDATE OF priority, created_at, batch_size, total, ids, started, completed, failed, not_after, cancelled_from, cancelled_at, cancel_reason, finished_at ON ingestions
    FOR EACH ROW EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER windows_changed AFTER INSERT OR UPDATE OF started_at, finished_at, state ON windows
    FOR EACH ROW EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER window_items_changed AFTER INSERT OR UPDATE OF window_seq, ingestion_seq, first_pos, count, priority ON window_items
    FOR EACH ROW EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER requeued_changed AFTER INSERT OR UPDATE ON requeued
    FOR EACH ROW EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER results_changed AFTER INSERT OR UPDATE OF state ON results
    FOR EACH ROW EXECUTE FUNCTION notify_status_changed('changed');
-- Every change of the started totals comes with a change above (a claim, a cancel, an expiry, a move);
-- this one makes sure a future path that changed only the totals would be heard too.
CREATE TRIGGER queue_totals_started AFTER UPDATE OF started ON queue_totals
    FOR EACH ROW WHEN (OLD.started IS DISTINCT FROM NEW.started) EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER limiter_paused AFTER UPDATE OF paused_until, queue_paused_at ON limiter
    FOR EACH ROW EXECUTE FUNCTION notify_status_changed('changed');

CREATE TRIGGER ingestions_deleted AFTER DELETE ON ingestions FOR EACH STATEMENT EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER windows_deleted AFTER DELETE ON windows FOR EACH STATEMENT EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER window_items_deleted AFTER DELETE ON window_items FOR EACH STATEMENT EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER requeued_deleted AFTER DELETE ON requeued FOR EACH STATEMENT EXECUTE FUNCTION notify_status_changed('changed');
CREATE TRIGGER results_deleted AFTER DELETE ON results FOR EACH STATEMENT EXECUTE FUNCTION notify_status_changed('changed');
