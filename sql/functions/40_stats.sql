-- Statistics over an optional date range [p_from, p_to] (inclusive days in the session's
-- time zone; NULL means unbounded). Buckets are returned as text so one shape fits all.

CREATE OR REPLACE FUNCTION day_start(p_day date) RETURNS timestamptz
LANGUAGE sql STABLE AS $$ SELECT p_day::timestamptz $$;

CREATE OR REPLACE FUNCTION stats_revenue(p_from date, p_to date, p_by text)
RETURNS TABLE (bucket text, recharged bigint, fares bigint, recharges bigint, legs bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_lo timestamptz := coalesce(public.day_start(p_from), '-infinity');
    v_hi timestamptz := coalesce(public.day_start(p_to + 1), 'infinity');
BEGIN
    IF p_by NOT IN ('total', 'day', 'locality') THEN
        RAISE EXCEPTION 'unknown grouping %', p_by USING ERRCODE = 'RC002';
    END IF;
    RETURN QUERY
    WITH r AS (
        SELECT CASE p_by WHEN 'total' THEN 'all'
                         WHEN 'day' THEN to_char(rc.recharged_at, 'YYYY-MM-DD')
                         ELSE coalesce(l.name, 'unknown') END AS bucket,
               sum(rc.amount)::bigint AS recharged, count(*) AS recharges
        FROM public.recharges rc
        LEFT JOIN public.recharge_points p ON p_by = 'locality' AND p.point_id = rc.point_id
        LEFT JOIN public.localities l ON l.locality_id = p.locality_id
        WHERE rc.recharged_at >= v_lo AND rc.recharged_at < v_hi
        GROUP BY 1
    ), t AS (
        SELECT CASE p_by WHEN 'total' THEN 'all'
                         WHEN 'day' THEN to_char(tr.boarding_time, 'YYYY-MM-DD')
                         ELSE coalesce(l.name, 'unknown') END AS bucket,
               sum(tr.fare_charged)::bigint AS fares, count(*) AS legs
        FROM public.trips tr
        LEFT JOIN public.stations s ON p_by = 'locality' AND s.station_id = tr.station_id
        LEFT JOIN public.localities l ON l.locality_id = s.locality_id
        WHERE tr.boarding_time >= v_lo AND tr.boarding_time < v_hi
        GROUP BY 1
    )
    SELECT coalesce(r.bucket, t.bucket, 'all'), coalesce(r.recharged, 0), coalesce(t.fares, 0),
           coalesce(r.recharges, 0), coalesce(t.legs, 0)
    FROM r FULL JOIN t ON t.bucket = r.bucket
    UNION ALL
    SELECT 'all', 0, 0, 0, 0
    WHERE p_by = 'total' AND NOT EXISTS (SELECT 1 FROM r) AND NOT EXISTS (SELECT 1 FROM t)
    ORDER BY 1;
END $$;

CREATE OR REPLACE FUNCTION stats_trips(p_from date, p_to date, p_by text)
RETURNS TABLE (bucket text, legs bigint, journeys bigint, transfers bigint, completed bigint,
               fares bigint)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
    v_lo timestamptz := coalesce(public.day_start(p_from), '-infinity');
    v_hi timestamptz := coalesce(public.day_start(p_to + 1), 'infinity');
    v_window interval;
BEGIN
    IF p_by NOT IN ('total', 'day', 'hour', 'locality', 'route') THEN
        RAISE EXCEPTION 'unknown grouping %', p_by USING ERRCODE = 'RC002';
    END IF;
    SELECT make_interval(mins => lim.transfer_window_minutes) INTO v_window FROM public.limits lim;
    RETURN QUERY
    SELECT CASE p_by WHEN 'total' THEN 'all'
                     WHEN 'day' THEN to_char(tr.boarding_time, 'YYYY-MM-DD')
                     WHEN 'hour' THEN to_char(tr.boarding_time, 'HH24')
                     WHEN 'locality' THEN l.name
                     ELSE coalesce(rt.code, 'none') END AS bucket,
           count(*) AS legs,
           count(*) FILTER (WHERE tr.leg_number = 1) AS journeys,
           count(*) FILTER (WHERE tr.is_transfer) AS transfers,
           -- a journey is completed once its transfer window has closed
           count(*) FILTER (WHERE tr.leg_number = 1 AND tr.boarding_time + v_window < now())
               AS completed,
           sum(tr.fare_charged)::bigint AS fares
    FROM public.trips tr
    LEFT JOIN public.stations s ON p_by = 'locality' AND s.station_id = tr.station_id
    LEFT JOIN public.localities l ON l.locality_id = s.locality_id
    LEFT JOIN public.routes rt ON p_by = 'route' AND rt.route_id = tr.route_id
    WHERE tr.boarding_time >= v_lo AND tr.boarding_time < v_hi
    GROUP BY 1
    UNION ALL
    SELECT 'all', 0, 0, 0, 0, 0
    WHERE p_by = 'total' AND NOT EXISTS (
        SELECT 1 FROM public.trips tr WHERE tr.boarding_time >= v_lo AND tr.boarding_time < v_hi)
    ORDER BY 1;
END $$;

CREATE OR REPLACE FUNCTION stats_users_count()
RETURNS TABLE (users bigint, users_with_cards bigint, cards bigint, active_cards bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM public.users),
           (SELECT count(DISTINCT c.user_id) FROM public.cards c),
           (SELECT count(*) FROM public.cards),
           (SELECT count(*) FROM public.cards c WHERE c.status = 'active')
$$;

-- Distinct users with an active card that boarded in the window.
CREATE OR REPLACE FUNCTION stats_users_active(p_from date, p_to date)
RETURNS TABLE (active_users bigint, active_cards bigint)
LANGUAGE sql STABLE AS $$
    SELECT count(DISTINCT c.user_id), count(DISTINCT c.card_id)
    FROM public.cards c
    WHERE c.status = 'active' AND EXISTS (
        SELECT 1 FROM public.trips tr
        WHERE tr.card_id = c.card_id
          AND tr.boarding_time >= coalesce(public.day_start(p_from), '-infinity')
          AND tr.boarding_time < coalesce(public.day_start(p_to + 1), 'infinity'))
$$;

CREATE OR REPLACE FUNCTION stats_users_latest(p_limit integer)
RETURNS TABLE (user_id bigint, full_name text, registered_at timestamptz, cards bigint)
LANGUAGE sql STABLE AS $$
    SELECT u.user_id, u.full_name, u.registered_at,
           (SELECT count(*) FROM public.cards c WHERE c.user_id = u.user_id)
    FROM public.users u
    ORDER BY u.registered_at DESC, u.user_id DESC
    LIMIT p_limit
$$;
