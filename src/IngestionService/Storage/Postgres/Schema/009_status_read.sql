-- A status read in one call and one snapshot (a STABLE function's queries all see the snapshot of the
-- statement that calls it), running only the parts the ingestion needs: an unknown id costs one index
-- lookup, the ids ahead are read only while ids wait, the spans only once some have started. The same
-- answer a statement of UNION ALL branches gives, without planning and starting every branch on each call
-- (plpgsql keeps each query's plan for the session). Rows, told apart by `kind`:
--   0 the ingestion: priority, batch size, started (to where a cancel cut it), completed, failed; created, not_after; ids
--   1 a window span: first position, count, state, window seq; started, finished
--   2 a requeued position          4 a failed position
--   3 while ids wait: ids_before plus the cancelled tails behind it (they left the started total without
--     having been ahead of it), and the requeued ids of its priority at or before it
--   5 its cancel: from, reason; at
-- The running totals (queue_totals_by_priority() of 008) and the limiter's pauses, which every read of a
-- waiting ingestion needs as well, are the same for every ingestion: the caller reads them once beside it,
-- in the same statement (see Storage/Postgres/PostgresStatusReads.cs).
CREATE FUNCTION ingestion_status(ingestion uuid)
RETURNS TABLE (kind smallint, a bigint, b bigint, c bigint, d bigint, e bigint, t1 timestamptz, t2 timestamptz, blob bytea)
LANGUAGE plpgsql STABLE
-- Each query's plan is made once per session: a plan made afresh for each call's values (the default for
-- the first calls, and for good when the estimates look alike) costs more than running it.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    i record;
    tails bigint;
    requeued_ahead bigint;
BEGIN
    SELECT s.seq, s.priority, s.created_at, s.batch_size, s.started, s.completed, s.total, s.ids, s.ids_before, s.failed, s.not_after,
           s.cancelled_from, s.cancelled_at, s.cancel_reason
    INTO i FROM ingestions s WHERE s.id = ingestion;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    RETURN QUERY SELECT 0::smallint, i.priority::bigint, i.batch_size::bigint, coalesce(i.cancelled_from, i.started)::bigint,
                        i.completed::bigint, i.failed::bigint, i.created_at, i.not_after, i.ids;
    IF i.cancelled_from IS NOT NULL THEN
        RETURN QUERY SELECT 5::smallint, i.cancelled_from::bigint, i.cancel_reason::bigint, NULL::bigint, NULL::bigint, NULL::bigint,
                            i.cancelled_at, NULL::timestamptz, NULL::bytea;
    END IF;

    IF i.started > 0 THEN
        RETURN QUERY SELECT 1::smallint, wi.first_pos::bigint, wi.count::bigint, w.state::bigint, w.seq, NULL::bigint, w.started_at, w.finished_at, NULL::bytea
                     FROM window_items wi JOIN windows w ON w.seq = wi.window_seq WHERE wi.ingestion_seq = i.seq;
        RETURN QUERY SELECT 2::smallint, q.position::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::bytea
                     FROM requeued q WHERE q.ingestion_seq = i.seq;
    END IF;

    IF i.failed > 0 THEN
        RETURN QUERY SELECT 4::smallint, r.position::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::bytea
                     FROM results r WHERE r.ingestion_seq = i.seq AND r.state = 2;
    END IF;

    IF i.started < i.total THEN
        -- Cancelled tails behind it left the started total without having been ahead of it.
        SELECT coalesce(sum(c.total - c.cancelled_from), 0) INTO tails FROM ingestions c
        WHERE c.priority = i.priority AND c.cancelled_from < c.total AND (c.created_at, c.seq) > (i.created_at, i.seq);
        -- Nearly always empty; walked from its side when not, one look-up of each id's ingestion.
        requeued_ahead := 0;
        IF EXISTS (SELECT 1 FROM requeued) THEN
            SELECT count(*) INTO requeued_ahead
            FROM requeued q, LATERAL (SELECT r.priority, r.created_at FROM ingestions r WHERE r.seq = q.ingestion_seq OFFSET 0) r
            WHERE r.priority = i.priority AND (r.created_at, q.ingestion_seq) <= (i.created_at, i.seq);
        END IF;

        RETURN QUERY SELECT 3::smallint, i.ids_before + tails, requeued_ahead, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::bytea;
    END IF;
END
$$;
