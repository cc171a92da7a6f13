-- The daily operations report (`recharge report daily`): the day's busiest stations,
-- recharge points and the cards by status. Day totals come from stats_revenue/stats_trips.

CREATE OR REPLACE FUNCTION report_top_stations(p_day date, p_limit integer)
RETURNS TABLE (station_id integer, station text, locality text, legs bigint, transfers bigint,
               fares bigint)
LANGUAGE sql STABLE SET jit = off
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.station_id, s.name, l.name, t.legs, t.transfers, t.fares
    FROM (SELECT tr.station_id, count(*) AS legs, count(*) FILTER (WHERE tr.is_transfer) AS transfers,
                 sum(tr.fare_charged)::bigint AS fares
          FROM public.trips tr
          WHERE tr.boarding_time >= p_day::timestamptz AND tr.boarding_time < (p_day + 1)::timestamptz
          GROUP BY tr.station_id) t
    JOIN public.stations s ON s.station_id = t.station_id
    JOIN public.localities l ON l.locality_id = s.locality_id
    ORDER BY t.legs DESC, s.station_id
    LIMIT p_limit
$$;

CREATE OR REPLACE FUNCTION report_recharge_points(p_day date, p_limit integer)
RETURNS TABLE (point_id integer, point text, locality text, recharges bigint, recharged bigint)
LANGUAGE sql STABLE SET jit = off
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT r.point_id, coalesce(p.name, 'no point'), coalesce(l.name, 'unknown'), r.recharges,
           r.recharged
    FROM (SELECT rc.point_id, count(*) AS recharges, sum(rc.amount)::bigint AS recharged
          FROM public.recharges rc
          WHERE rc.recharged_at >= p_day::timestamptz AND rc.recharged_at < (p_day + 1)::timestamptz
          GROUP BY rc.point_id) r
    LEFT JOIN public.recharge_points p ON p.point_id = r.point_id
    LEFT JOIN public.localities l ON l.locality_id = p.locality_id
    ORDER BY r.recharged DESC, r.point_id
    LIMIT p_limit
$$;

-- Cards by status now, and how many changed to each status during the day.
CREATE OR REPLACE FUNCTION report_card_status(p_day date)
RETURNS TABLE (status text, cards bigint, changed_to_on_day bigint)
LANGUAGE sql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT s.status,
           (SELECT count(*) FROM public.cards c WHERE c.status = s.status),
           (SELECT count(*) FROM public.card_status_changes h
            WHERE h.new_status = s.status AND h.changed_at >= p_day::timestamptz
              AND h.changed_at < (p_day + 1)::timestamptz)
    FROM unnest(ARRAY['active', 'inactive', 'blocked', 'lost']) s (status)
$$;
