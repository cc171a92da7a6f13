-- Daily rollups (tables in migrations/0003_rollups.sql). The *_rows functions aggregate
-- the base tables over a time range; rollup_build() stores their output up to
-- rolled_until, the statistics use them live for the rest, and verify_rollups() compares.

DROP AGGREGATE IF EXISTS bit_members(integer);
DROP FUNCTION IF EXISTS with_bit(bit varying, integer);

-- Everything before this instant is rolled up (except dirty days); '-infinity' when the
-- rollups were built in another time zone (then every statistic scans the base tables).
-- It need not be midnight: the last rolled-up day may be partial, up to this instant.
-- The longest transfer window of any period: how long a journey may still gain legs.
CREATE OR REPLACE FUNCTION longest_transfer_window() RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(w.window_minutes), 0) FROM public.transfer_windows w
$$;

CREATE OR REPLACE FUNCTION rolled_until() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.time_zone = current_setting('TimeZone') THEN s.rolled_until
                ELSE '-infinity' END
    FROM public.rollup_state s
$$;

-- Which stored days a statistic over [p_from, p_to] may read: first_day <= day <= last_day
-- and day not dirty. Everything else comes from live_ranges().
CREATE OR REPLACE FUNCTION rollup_window(p_from date, p_to date)
RETURNS TABLE (first_day date, last_day date, dirty date[])
LANGUAGE sql STABLE AS $$
    SELECT coalesce(p_from, '-infinity'),
           least(coalesce(p_to, 'infinity'), (public.rolled_until() - interval '1 microsecond')::date),
           (SELECT coalesce(array_agg(d.day), '{}') FROM public.rollup_dirty d)
$$;

-- The parts of [p_from, p_to] (whole days; NULL = unbounded) the rollups do not cover:
-- from rolled_until on, and the rolled-up part of each dirty day.
CREATE OR REPLACE FUNCTION live_ranges(p_from date, p_to date)
RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $$
    WITH w AS (SELECT coalesce(p_from, '-infinity')::timestamptz AS lo,
                      coalesce(p_to + 1, 'infinity')::timestamptz AS hi,
                      public.rolled_until() AS until)
    SELECT greatest(w.lo, w.until), w.hi FROM w WHERE greatest(w.lo, w.until) < w.hi
    UNION ALL
    SELECT greatest(w.lo, d.day::timestamptz), least(w.hi, (d.day + 1)::timestamptz, w.until)
    FROM public.rollup_dirty d CROSS JOIN w
    WHERE d.day::timestamptz < w.until
      AND d.day::timestamptz < w.hi AND (d.day + 1)::timestamptz > w.lo
$$;

-- Money per day and recharge point (NULL: no point): recharges in, and reversals of them
-- (a reversal carries the point of the recharge it reverses); a point's locality and
-- channel follow from the point.
DROP FUNCTION IF EXISTS revenue_rows(timestamptz, timestamptz);  -- (without reversals before 0019)
CREATE OR REPLACE FUNCTION revenue_rows(p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (day date, point_id integer, recharged bigint, recharges bigint, reversed bigint,
               reversals bigint)
LANGUAGE sql STABLE AS $$
    SELECT l.created_at::date, l.point_id,
           coalesce(sum(l.amount) FILTER (WHERE l.kind = 'recharge'), 0)::bigint,
           count(*) FILTER (WHERE l.kind = 'recharge'),
           coalesce(-sum(l.amount) FILTER (WHERE l.kind = 'correction'), 0)::bigint,
           count(*) FILTER (WHERE l.kind = 'correction')
    FROM public.ledger l
    WHERE l.kind IN ('recharge', 'correction') AND l.created_at >= p_lo AND l.created_at < p_hi
    GROUP BY 1, 2
$$;

-- Legs per day along one dimension: hour of day, station locality, route or beneficiary
-- (0 general, 1 older adult, 2 disability, 3 poverty: the criterion of the benefit trip
-- that paid the leg). `completed` counts journeys whose transfer window has closed;
-- `fares` is what riders paid, `benefit_fares` the fares the city paid through benefit
-- trips (the fare of each such leg).
CREATE OR REPLACE FUNCTION beneficiary_key(p_benefit text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_benefit WHEN 'older_adult' THEN 1 WHEN 'disability' THEN 2
                          WHEN 'poverty' THEN 3 ELSE 0 END
$$;

DROP FUNCTION IF EXISTS trip_rows(timestamptz, timestamptz, text);  -- (benefit fares, 0023)
CREATE OR REPLACE FUNCTION trip_rows(p_lo timestamptz, p_hi timestamptz, p_dimension text)
RETURNS TABLE (day date, dimension text, key integer, legs bigint, journeys bigint,
               transfers bigint, completed bigint, fares bigint, benefit_fares bigint)
LANGUAGE sql STABLE AS $$
    SELECT tr.boarding_time::date, p_dimension,
           CASE p_dimension WHEN 'hour' THEN extract(hour FROM tr.boarding_time)::integer
                            WHEN 'locality' THEN s.locality_id::integer
                            WHEN 'beneficiary' THEN public.beneficiary_key(tr.benefit)
                            ELSE tr.route_id END,
           count(*), count(*) FILTER (WHERE NOT tr.is_transfer),
           count(*) FILTER (WHERE tr.is_transfer),
           count(*) FILTER (WHERE NOT tr.is_transfer AND tr.boarding_time  -- (one lookup)
                                      + make_interval(mins => (SELECT public.longest_transfer_window()))
                                      < now()),
           sum(tr.fare_charged)::bigint, coalesce(sum(f.amount), 0)::bigint
    FROM public.trips tr
    LEFT JOIN public.stations s ON p_dimension = 'locality' AND s.station_id = tr.station_id
    LEFT JOIN public.fares f ON tr.paid_by = 'benefit' AND f.fare_id = tr.fare_id
    CROSS JOIN public.limits lim
    WHERE tr.boarding_time >= p_lo AND tr.boarding_time < p_hi
    GROUP BY 1, 3
$$;

-- trip_rows() of the four dimensions at once, in one pass over the trips (the build's
-- form: the same rows, without `completed`, which is not stored)
DROP FUNCTION IF EXISTS trip_rows_all(timestamptz, timestamptz);  -- (benefit fares, 0023)
CREATE OR REPLACE FUNCTION trip_rows_all(p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (day date, dimension text, key integer, legs bigint, journeys bigint,
               transfers bigint, fares bigint, benefit_fares bigint)
LANGUAGE sql STABLE AS $$
    SELECT g.day,
           CASE grouping(g.hour, g.locality, g.route, g.beneficiary)
               WHEN 7 THEN 'hour' WHEN 11 THEN 'locality' WHEN 13 THEN 'route'
               ELSE 'beneficiary' END,
           coalesce(g.hour, g.locality, g.route, g.beneficiary),
           count(*), count(*) FILTER (WHERE NOT g.is_transfer),
           count(*) FILTER (WHERE g.is_transfer), sum(g.fare_charged)::bigint,
           coalesce(sum(g.benefit_fare), 0)::bigint
    FROM (SELECT tr.boarding_time::date AS day,
                 date_part('hour', tr.boarding_time)::integer AS hour,  -- (no numeric)
                 s.locality_id::integer AS locality, tr.route_id AS route,
                 public.beneficiary_key(tr.benefit) AS beneficiary,
                 tr.is_transfer, tr.fare_charged, f.amount AS benefit_fare
          FROM public.trips tr
          LEFT JOIN public.stations s ON s.station_id = tr.station_id
          LEFT JOIN public.fares f ON tr.paid_by = 'benefit' AND f.fare_id = tr.fare_id
          WHERE tr.boarding_time >= p_lo AND tr.boarding_time < p_hi
            AND EXISTS (SELECT FROM public.limits)) g  -- (trip_rows' join with the one row)
    GROUP BY GROUPING SETS ((g.day, g.hour), (g.day, g.locality), (g.day, g.route),
                            (g.day, g.beneficiary))
$$;

CREATE OR REPLACE FUNCTION rider_rows(p_lo timestamptz, p_hi timestamptz)
RETURNS TABLE (day date, kind text, chunk bigint, members bit varying)
LANGUAGE sql STABLE AS $$
    -- per chunk of 4096 ids, a 4096-bit string with bit (id % 4096) set for each id that
    -- rode (users: cards registered to someone). Built in two steps: the OR of each id's bit
    -- in its 64-bit word (integer work, one group per day, kind and id / 64), then each
    -- chunk's words placed in the string
    WITH words AS (
        SELECT tr.boarding_time::date AS day, i.is_card, i.id >> 6 AS word_id,
               bit_or(1::bigint << (63 - (i.id & 63))::integer) AS bits
        FROM public.trips tr JOIN public.cards c ON c.card_id = tr.card_id
        CROSS JOIN LATERAL (VALUES (false, c.user_id), (true, tr.card_id)) AS i (is_card, id)
        WHERE tr.boarding_time >= p_lo AND tr.boarding_time < p_hi AND i.id IS NOT NULL
        GROUP BY 1, 2, 3
    )
    SELECT w.day, CASE WHEN w.is_card THEN 'card' ELSE 'user' END, w.word_id >> 6,
           bit_or(w.bits::bit(64)::bit(4096) >> (64 * (w.word_id & 63))::integer)::bit varying
    FROM words w
    GROUP BY w.day, w.is_card, w.word_id >> 6
$$;

-- Roll up everything up to 30 minutes plus the transfer window ago (so every journey in
-- it is completed), rebuilding the last, partial day and every dirty day. Writers mark
-- the day of any row older than 15 minutes dirty, so a row committed during a build is
-- either seen by it or marks its day dirty.
CREATE OR REPLACE FUNCTION rollup_build()
RETURNS TABLE (days_built integer, rolled_until timestamptz, time_zone text)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_zone text := current_setting('TimeZone');
    v_state public.rollup_state;
    v_until timestamptz;
    v_from timestamptz;
    v_days date[];
    v_ranges tstzrange[];
BEGIN
    PERFORM pg_advisory_xact_lock(7325002);
    SELECT * INTO v_state FROM public.rollup_state FOR UPDATE;
    IF v_state.time_zone <> v_zone THEN  -- days are zone-dependent: start over
        TRUNCATE public.daily_revenue, public.daily_trips, public.daily_riders, public.rollup_dirty;
        v_state.rolled_until := '-infinity';
    END IF;
    SELECT greatest(v_state.rolled_until, now() - interval '30 minutes'
                    - make_interval(mins => public.longest_transfer_window()))
    INTO v_until FROM public.limits lim;
    -- start of the day the last build stopped in (or of the oldest data)
    v_from := CASE WHEN v_state.rolled_until > '-infinity' THEN v_state.rolled_until
                   ELSE least((SELECT min(l.created_at) FROM public.ledger l
                               WHERE l.kind IN ('recharge', 'correction')),
                              (SELECT min(l.boarding_time) FROM public.ledger l
                               WHERE l.kind = 'fare')) END;
    v_from := coalesce(v_from::date::timestamptz, v_until);

    WITH dirty AS (DELETE FROM public.rollup_dirty d WHERE d.day::timestamptz < v_until
                   RETURNING d.day)
    SELECT coalesce(array_agg(day ORDER BY day), '{}') INTO v_days
    FROM (SELECT day FROM dirty WHERE day::timestamptz < v_from
          UNION
          SELECT g::date FROM generate_series(v_from, v_until - interval '1 microsecond',
                                              interval '1 day') g) d;

    SELECT coalesce(array_agg(r), '{}') INTO v_ranges
    FROM (SELECT tstzrange(d::timestamptz, (d + 1)::timestamptz) AS r FROM unnest(v_days) d
          WHERE d::timestamptz < v_from
          UNION ALL
          SELECT tstzrange(v_from, v_until) WHERE v_from < v_until) ranges;

    DELETE FROM public.daily_revenue WHERE day = ANY (v_days);
    DELETE FROM public.daily_trips WHERE day = ANY (v_days);
    DELETE FROM public.daily_riders WHERE day = ANY (v_days);
    INSERT INTO public.daily_revenue (day, point_id, recharged, recharges, reversed, reversals)
    SELECT r.* FROM unnest(v_ranges) g CROSS JOIN LATERAL public.revenue_rows(lower(g), upper(g)) r;
    INSERT INTO public.daily_trips (day, dimension, key, legs, journeys, transfers, fares,
                                    benefit_fares)
    SELECT t.day, t.dimension, t.key, t.legs, t.journeys, t.transfers, t.fares, t.benefit_fares
    FROM unnest(v_ranges) g, LATERAL public.trip_rows_all(lower(g), upper(g)) t;
    INSERT INTO public.daily_riders
    SELECT r.* FROM unnest(v_ranges) g CROSS JOIN LATERAL public.rider_rows(lower(g), upper(g)) r;

    UPDATE public.rollup_state s SET time_zone = v_zone, built_at = now(), rolled_until = v_until;
    v_state.rolled_until := v_until;
    RETURN QUERY SELECT cardinality(v_days), v_state.rolled_until, v_zone;
END $$;

-- Stored rollups that differ from a recomputation from the base tables (all rolled-up,
-- non-dirty days, or only p_days), read in the time zone the rollups were built in.
DROP FUNCTION IF EXISTS verify_rollups();  -- (every day before incremental verify)
CREATE OR REPLACE FUNCTION verify_rollups(p_days date[] DEFAULT NULL)
RETURNS TABLE (day date, rollup text, stored text, recomputed text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_zone text := current_setting('TimeZone');
    v_until timestamptz;
BEGIN
    SELECT s.rolled_until INTO v_until FROM public.rollup_state s;
    PERFORM set_config('TimeZone', (SELECT s.time_zone FROM public.rollup_state s), true);
    RETURN QUERY
    WITH kept AS (SELECT d.day FROM public.rollup_dirty d),
    ranges AS (  -- what is recomputed: everything rolled up, or the rolled-up part of p_days
        SELECT '-infinity'::timestamptz AS lo, v_until AS hi WHERE p_days IS NULL
        UNION ALL
        SELECT d::timestamptz, least((d + 1)::timestamptz, v_until) FROM unnest(p_days) d
        WHERE d::timestamptz < v_until
    ),
    revenue AS (
        SELECT coalesce(s.day, r.day) AS day, 'daily_revenue point ' || coalesce(s.point_id, r.point_id) AS rollup,
               (s.recharged, s.recharges, s.reversed, s.reversals)::text AS stored,
               (r.recharged, r.recharges, r.reversed, r.reversals)::text AS recomputed
        FROM (SELECT * FROM public.daily_revenue s
              WHERE p_days IS NULL OR s.day = ANY (p_days)) s
        FULL JOIN (SELECT v.* FROM ranges g, LATERAL public.revenue_rows(g.lo, g.hi) v) r
               ON r.day = s.day AND coalesce(r.point_id, -1) = coalesce(s.point_id, -1)
        WHERE (s.recharged, s.recharges, s.reversed, s.reversals)
              IS DISTINCT FROM (r.recharged, r.recharges, r.reversed, r.reversals)
    ), trip_days AS (
        SELECT coalesce(s.day, r.day), 'daily_trips ' || coalesce(s.dimension, r.dimension) || ' ' || coalesce(s.key, r.key),
               (s.legs, s.journeys, s.transfers, s.fares, s.benefit_fares)::text,
               (r.legs, r.journeys, r.transfers, r.fares, r.benefit_fares)::text
        FROM (SELECT * FROM public.daily_trips s
              WHERE p_days IS NULL OR s.day = ANY (p_days)) s
        FULL JOIN (SELECT t.* FROM ranges g, LATERAL public.trip_rows_all(g.lo, g.hi) t) r
               ON r.day = s.day AND r.dimension = s.dimension AND coalesce(r.key, -1) = coalesce(s.key, -1)
        WHERE (s.legs, s.journeys, s.transfers, s.fares, s.benefit_fares)
              IS DISTINCT FROM (r.legs, r.journeys, r.transfers, r.fares, r.benefit_fares)
    ), riders AS (
        SELECT coalesce(s.day, r.day), 'daily_riders ' || coalesce(s.kind, r.kind) || ' chunk ' || coalesce(s.chunk, r.chunk),
               coalesce(bit_count(s.members), 0) || ' riders', coalesce(bit_count(r.members), 0) || ' riders'
        FROM (SELECT * FROM public.daily_riders s
              WHERE p_days IS NULL OR s.day = ANY (p_days)) s
        FULL JOIN (SELECT v.* FROM ranges g, LATERAL public.rider_rows(g.lo, g.hi) v) r
               ON r.day = s.day AND r.kind = s.kind AND r.chunk = s.chunk
        WHERE s.members IS DISTINCT FROM r.members
    )
    SELECT * FROM (SELECT * FROM revenue UNION ALL SELECT * FROM trip_days UNION ALL SELECT * FROM riders) v
    WHERE v.day NOT IN (SELECT k.day FROM kept k)
    ORDER BY 1, 2;
    PERFORM set_config('TimeZone', v_zone, true);
END $$;
