-- Statistics over an optional date range [p_from, p_to] (inclusive days in the session's
-- time zone; NULL means unbounded). Buckets are returned as text so one shape fits all.
-- Rolled-up days come from the daily rollups (25_rollups.sql), the rest from a live scan;
-- JIT is off because its compile time (~15 ms) dwarfs these short queries.

-- --by point and --by channel settle recharges per recharge point and per network
-- (station_kiosk, retail, online); fares are not collected by points, so those rows carry
-- no fares or legs (NULL).
-- Money in is reported gross (recharged), corrected (reversed: reversals of recharges, on
-- the day they were made) and net (recharged - reversed).
DROP FUNCTION IF EXISTS stats_revenue(date, date, text);  -- (without reversals before 0019)
CREATE OR REPLACE FUNCTION stats_revenue(p_from date, p_to date, p_by text)
RETURNS TABLE (bucket text, recharged bigint, reversed bigint, net bigint, fares bigint,
               benefit_fares bigint, recharges bigint, reversals bigint, legs bigint)
LANGUAGE plpgsql STABLE SET jit = off
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_money_only boolean := p_by IN ('point', 'channel');
BEGIN
    IF p_by NOT IN ('total', 'day', 'locality', 'point', 'channel') THEN
        RAISE EXCEPTION 'unknown grouping %', p_by USING ERRCODE = 'RC002';
    END IF;
    RETURN QUERY
    WITH recharged AS (
        SELECT d.day, d.point_id, d.recharged, d.recharges, d.reversed, d.reversals
        FROM public.rollup_window(p_from, p_to) w
        JOIN public.daily_revenue d ON d.day >= w.first_day AND d.day <= w.last_day
                                   AND d.day <> ALL (w.dirty)
        UNION ALL
        SELECT v.day, v.point_id, v.recharged, v.recharges, v.reversed, v.reversals
        FROM public.live_ranges(p_from, p_to) g CROSS JOIN LATERAL public.revenue_rows(g.lo, g.hi) v
    ), movements AS (
        SELECT r.day, p.locality_id::integer AS locality_id, r.point_id, p.channel, r.recharged,
               r.reversed, 0::bigint AS fares, 0::bigint AS benefit_fares, r.recharges,
               r.reversals, 0::bigint AS legs
        FROM recharged r LEFT JOIN public.recharge_points p ON p.point_id = r.point_id
        UNION ALL
        SELECT d.day, d.key, NULL, NULL, 0, 0, d.fares, d.benefit_fares, 0, 0, d.legs
        FROM public.rollup_window(p_from, p_to) w
        JOIN public.daily_trips d ON d.dimension = 'locality' AND d.day >= w.first_day
                                 AND d.day <= w.last_day
                                 AND d.day <> ALL (w.dirty)
        WHERE NOT v_money_only
        UNION ALL
        SELECT v.day, v.key, NULL, NULL, 0, 0, v.fares, v.benefit_fares, 0, 0, v.legs
        FROM public.live_ranges(p_from, p_to) g,
             LATERAL public.trip_rows(g.lo, g.hi, 'locality') v
        WHERE NOT v_money_only
    )
    SELECT o.* FROM (
    SELECT CASE p_by WHEN 'total' THEN 'all'
                     WHEN 'day' THEN to_char(m.day, 'YYYY-MM-DD')
                     WHEN 'locality' THEN coalesce(l.name, 'unknown')
                     WHEN 'point' THEN coalesce(m.point_id::text, 'unknown')
                     ELSE coalesce(m.channel, 'unknown') END,
           sum(m.recharged)::bigint, sum(m.reversed)::bigint,
           (sum(m.recharged) - sum(m.reversed))::bigint,
           CASE WHEN NOT v_money_only THEN sum(m.fares)::bigint END,
           CASE WHEN NOT v_money_only THEN sum(m.benefit_fares)::bigint END,
           sum(m.recharges)::bigint, sum(m.reversals)::bigint,
           CASE WHEN NOT v_money_only THEN sum(m.legs)::bigint END
    FROM movements m
    LEFT JOIN public.localities l ON p_by = 'locality' AND l.locality_id = m.locality_id
    GROUP BY 1
    UNION ALL
    SELECT 'all', 0, 0, 0, 0, 0, 0, 0, 0
    WHERE p_by = 'total' AND NOT EXISTS (SELECT 1 FROM movements)
    ) o (bucket, recharged, reversed, net, fares, benefit_fares, recharges, reversals, legs)
    ORDER BY CASE WHEN p_by = 'point' THEN lpad(o.bucket, 12, '0') ELSE o.bucket END;  -- ids as numbers
END $$;

CREATE OR REPLACE FUNCTION stats_trips(p_from date, p_to date, p_by text)
RETURNS TABLE (bucket text, legs bigint, journeys bigint, transfers bigint, completed bigint,
               fares bigint)
LANGUAGE plpgsql STABLE SET jit = off
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_dimension text := CASE WHEN p_by IN ('hour', 'route', 'beneficiary') THEN p_by
                             ELSE 'locality' END;
BEGIN
    IF p_by NOT IN ('total', 'day', 'hour', 'locality', 'route', 'beneficiary') THEN
        RAISE EXCEPTION 'unknown grouping %', p_by USING ERRCODE = 'RC002';
    END IF;
    RETURN QUERY
    WITH legs AS (
        -- a rolled-up day closed after its last transfer window: every journey completed
        SELECT d.day, d.key, d.legs, d.journeys, d.transfers, d.journeys AS completed, d.fares
        FROM public.rollup_window(p_from, p_to) w
        JOIN public.daily_trips d ON d.dimension = v_dimension AND d.day >= w.first_day
                                 AND d.day <= w.last_day
                                 AND d.day <> ALL (w.dirty)
        UNION ALL
        SELECT v.day, v.key, v.legs, v.journeys, v.transfers, v.completed, v.fares
        FROM public.live_ranges(p_from, p_to) g,
             LATERAL public.trip_rows(g.lo, g.hi, v_dimension) v
    )
    SELECT CASE p_by WHEN 'total' THEN 'all'
                     WHEN 'day' THEN to_char(t.day, 'YYYY-MM-DD')
                     WHEN 'hour' THEN lpad(t.key::text, 2, '0')
                     WHEN 'locality' THEN l.name
                     WHEN 'beneficiary' THEN (ARRAY['general', 'older_adult', 'disability',
                                                    'poverty'])[t.key + 1]
                     ELSE coalesce(rt.code, 'none') END,
           sum(t.legs)::bigint, sum(t.journeys)::bigint, sum(t.transfers)::bigint,
           sum(t.completed)::bigint, sum(t.fares)::bigint
    FROM legs t
    LEFT JOIN public.localities l ON p_by = 'locality' AND l.locality_id = t.key
    LEFT JOIN public.routes rt ON p_by = 'route' AND rt.route_id = t.key
    GROUP BY 1
    UNION ALL
    SELECT 'all', 0, 0, 0, 0, 0 WHERE p_by = 'total' AND NOT EXISTS (SELECT 1 FROM legs)
    ORDER BY 1;
END $$;

-- Current counts, kept by triggers (migrations/0004_counts.sql; checked by verify).
CREATE OR REPLACE FUNCTION stats_users_count()
RETURNS TABLE (users bigint, cards bigint, active_cards bigint)
LANGUAGE sql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT e.users, e.cards, e.active_cards FROM public.entity_counts e
$$;

-- Distinct users (and cards) that boarded in the window. Every boarding was made with a
-- card that was active at the time (record_trip refuses any other status), so this is
-- "users with an active card used in the window", and it does not change later when a
-- card is blocked or lost. Distinct counts come from OR-ing the daily rider bitmaps.
-- Its second column was once called active_cards, the name `stats users count` uses for
-- cards whose status is active: a changed result type needs the old function dropped.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'stats_users_active'
               AND 'active_cards' = ANY (proargnames)) THEN
        DROP FUNCTION public.stats_users_active(date, date);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION stats_users_active(p_from date, p_to date)
RETURNS TABLE (active_users bigint, cards_used bigint)
LANGUAGE sql STABLE SET jit = off
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH bitmaps AS (
        SELECT d.kind, d.chunk, d.members
        FROM public.rollup_window(p_from, p_to) w
        JOIN public.daily_riders d ON d.day >= w.first_day AND d.day <= w.last_day
                                  AND d.day <> ALL (w.dirty)
        UNION ALL
        SELECT v.kind, v.chunk, v.members
        FROM public.live_ranges(p_from, p_to) g CROSS JOIN LATERAL public.rider_rows(g.lo, g.hi) v
    ), chunks AS (
        SELECT b.kind, bit_count(bit_or(b.members)) AS riders FROM bitmaps b GROUP BY b.kind, b.chunk
    )
    SELECT coalesce(sum(c.riders) FILTER (WHERE c.kind = 'user'), 0)::bigint,
           coalesce(sum(c.riders) FILTER (WHERE c.kind = 'card'), 0)::bigint
    FROM chunks c
$$;

CREATE OR REPLACE FUNCTION stats_users_latest(p_limit integer)
RETURNS TABLE (user_id bigint, full_name text, registered_at timestamptz, cards bigint)
LANGUAGE sql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT u.user_id, u.full_name, u.registered_at,
           (SELECT count(*) FROM public.cards c WHERE c.user_id = u.user_id)
    FROM public.users u
    ORDER BY u.registered_at DESC, u.user_id DESC
    LIMIT p_limit
$$;
