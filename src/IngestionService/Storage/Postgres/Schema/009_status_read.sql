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
BEGIN
    -- One query for the row and, while ids wait, what counts the ids ahead: the cancelled tails behind it
    -- (they left the started total without having been ahead of it), and the handed-back ids of its
    -- priority at or before it (`requeued` is nearly always empty, and walked from its side when not).
    SELECT s.seq, s.priority, s.created_at, s.batch_size, s.started, s.completed, s.total, s.ids, s.ids_before, s.failed, s.not_after,
           s.cancelled_from, s.cancelled_at, s.cancel_reason,
           CASE WHEN s.started < s.total THEN
               (SELECT coalesce(sum(x.total - x.cancelled_from), 0) FROM ingestions x
                WHERE x.priority = s.priority AND x.cancelled_from < x.total AND (x.created_at, x.seq) > (s.created_at, s.seq)) END AS tails,
           CASE WHEN s.started < s.total AND EXISTS (SELECT 1 FROM requeued) THEN
               (SELECT count(*) FROM requeued q, LATERAL (SELECT r.priority, r.created_at FROM ingestions r WHERE r.seq = q.ingestion_seq OFFSET 0) r
                WHERE r.priority = s.priority AND (r.created_at, q.ingestion_seq) <= (s.created_at, s.seq)) END AS requeued_ahead
    INTO i FROM ingestions s WHERE s.id = ingestion;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    -- Rows made of values already read are returned without running a query.
    kind := 0; a := i.priority; b := i.batch_size; c := coalesce(i.cancelled_from, i.started); d := i.completed; e := i.failed;
    t1 := i.created_at; t2 := i.not_after; blob := i.ids;
    RETURN NEXT;
    blob := NULL;

    IF i.started < i.total THEN
        kind := 3; a := i.ids_before + i.tails; b := coalesce(i.requeued_ahead, 0); c := NULL; d := NULL; e := NULL; t1 := NULL; t2 := NULL;
        RETURN NEXT;
    END IF;

    IF i.cancelled_from IS NOT NULL THEN
        kind := 5; a := i.cancelled_from; b := i.cancel_reason; c := NULL; d := NULL; e := NULL; t1 := i.cancelled_at; t2 := NULL;
        RETURN NEXT;
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
END
$$;
