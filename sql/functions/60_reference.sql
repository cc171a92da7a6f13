-- Reference data: stations, routes, recharge points, localities (read-only), and the
-- transfer windows (`transfer-rules set` adds a validity period, audited). Lists are keyset
-- paginated by id: the next page starts after the last id shown.

-- A locality given by id or by name (accents and case ignored); RC003 when there is none.
CREATE OR REPLACE FUNCTION locality_id_of(p_locality text) RETURNS smallint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id smallint;
BEGIN
    SELECT l.locality_id INTO v_id FROM public.localities l
    WHERE CASE WHEN p_locality ~ '^[0-9]{1,4}$' THEN l.locality_id = p_locality::integer
               ELSE public.search_key(l.name) = public.search_key(btrim(p_locality)) END;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'locality % not found (localities list shows them)', p_locality
            USING ERRCODE = 'RC003';
    END IF;
    RETURN v_id;
END $$;

CREATE OR REPLACE FUNCTION stations_list(p_name text, p_type text, p_locality text,
                                         p_limit integer, p_after integer)
RETURNS TABLE (station_id integer, name text, station_type text, locality_id smallint,
               locality text)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    -- part of the name, as a LIKE pattern (its own % _ and \ taken literally): LIKE scans
    -- the stored keys ten times faster than strpos()
    v_pattern text := '%' || regexp_replace(public.search_key(btrim(p_name)), '([%_\\])',
                                            '\\\1', 'g') || '%';
    v_locality smallint := CASE WHEN p_locality IS NOT NULL
                                THEN public.locality_id_of(p_locality) END;
BEGIN
    RETURN QUERY
        SELECT s.station_id, s.name, s.station_type, s.locality_id, l.name
        FROM public.stations s JOIN public.localities l ON l.locality_id = s.locality_id
        WHERE s.station_id > coalesce(p_after, 0)
          AND (v_pattern IS NULL OR s.name_key LIKE v_pattern)
          AND (p_type IS NULL OR s.station_type = p_type)
          AND (v_locality IS NULL OR s.locality_id = v_locality)
        ORDER BY s.station_id LIMIT p_limit;
END $$;

-- One station: its locality, the routes its taps boarded (with how many taps), its recharge
-- points, and the taps since midnight (the database's time zone).
CREATE OR REPLACE FUNCTION station_show(p_station_id integer)
RETURNS TABLE (station_id integer, name text, station_type text, locality_id smallint,
               locality text, routes jsonb, recharge_points jsonb, taps_today bigint)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.stations s WHERE s.station_id = p_station_id) THEN
        RAISE EXCEPTION 'station % not found (stations list shows them)', p_station_id
            USING ERRCODE = 'RC003';
    END IF;
    RETURN QUERY
        SELECT s.station_id, s.name, s.station_type, s.locality_id, l.name,
               coalesce((SELECT jsonb_agg(jsonb_build_object('route_id', r.route_id,
                                                             'code', r.code,
                                                             'route_type', r.route_type,
                                                             'taps', t.taps)
                                          ORDER BY r.route_id)
                         FROM (SELECT tr.route_id, count(*) AS taps FROM public.trips tr
                               WHERE tr.station_id = p_station_id AND tr.route_id IS NOT NULL
                               GROUP BY tr.route_id) t
                         JOIN public.routes r ON r.route_id = t.route_id), '[]'::jsonb),
               coalesce((SELECT jsonb_agg(jsonb_build_object('point_id', p.point_id,
                                                             'name', p.name,
                                                             'channel', p.channel)
                                          ORDER BY p.point_id)
                         FROM public.recharge_points p WHERE p.station_id = p_station_id),
                        '[]'::jsonb),
               (SELECT count(*) FROM public.trips tr
                WHERE tr.station_id = p_station_id AND tr.boarding_time >= current_date::timestamptz
                  AND tr.boarding_time < (current_date + 1)::timestamptz)
        FROM public.stations s JOIN public.localities l ON l.locality_id = s.locality_id
        WHERE s.station_id = p_station_id;
END $$;

CREATE OR REPLACE FUNCTION routes_list(p_code text, p_type text, p_limit integer,
                                       p_after integer)
RETURNS TABLE (route_id integer, code text, route_type text)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT r.route_id, r.code, r.route_type FROM public.routes r
        WHERE r.route_id > coalesce(p_after, 0)
          AND (p_code IS NULL OR starts_with(upper(r.code), upper(btrim(p_code))))
          AND (p_type IS NULL OR r.route_type = p_type)
        ORDER BY r.route_id LIMIT p_limit;
END $$;

-- One route: the stations its taps boarded at, where any did (a route's stops are known
-- only from its taps), and its taps since midnight.
CREATE OR REPLACE FUNCTION route_show(p_route_id integer)
RETURNS TABLE (route_id integer, code text, route_type text, stations jsonb, taps_today bigint)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.routes r WHERE r.route_id = p_route_id) THEN
        RAISE EXCEPTION 'route % not found (routes list shows them)', p_route_id
            USING ERRCODE = 'RC003';
    END IF;
    RETURN QUERY
        SELECT r.route_id, r.code, r.route_type,
               coalesce((SELECT jsonb_agg(jsonb_build_object('station_id', s.station_id,
                                                             'name', s.name, 'taps', t.taps)
                                          ORDER BY s.station_id)
                         FROM (SELECT tr.station_id, count(*) AS taps FROM public.trips tr
                               WHERE tr.route_id = p_route_id GROUP BY tr.station_id) t
                         JOIN public.stations s ON s.station_id = t.station_id), '[]'::jsonb),
               (SELECT count(*) FROM public.trips tr
                WHERE tr.route_id = p_route_id AND tr.boarding_time >= current_date::timestamptz
                  AND tr.boarding_time < (current_date + 1)::timestamptz)
        FROM public.routes r WHERE r.route_id = p_route_id;
END $$;

CREATE OR REPLACE FUNCTION points_list(p_locality text, p_limit integer, p_after integer)
RETURNS TABLE (point_id integer, name text, channel text, station_id integer,
               locality_id smallint, locality text)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_locality smallint := CASE WHEN p_locality IS NOT NULL
                                THEN public.locality_id_of(p_locality) END;
BEGIN
    RETURN QUERY
        SELECT p.point_id, p.name, p.channel, p.station_id, p.locality_id, l.name
        FROM public.recharge_points p LEFT JOIN public.localities l ON l.locality_id = p.locality_id
        WHERE p.point_id > coalesce(p_after, 0)
          AND (v_locality IS NULL OR p.locality_id = v_locality)
        ORDER BY p.point_id LIMIT p_limit;
END $$;

CREATE OR REPLACE FUNCTION localities_list()
RETURNS TABLE (locality_id smallint, name text, stations bigint, recharge_points bigint)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT l.locality_id, l.name,
               (SELECT count(*) FROM public.stations s WHERE s.locality_id = l.locality_id),
               (SELECT count(*) FROM public.recharge_points p WHERE p.locality_id = l.locality_id)
        FROM public.localities l ORDER BY l.locality_id;
END $$;

-- The transfer windows by period, and which transfer fare each pair of services pays.
CREATE OR REPLACE FUNCTION transfer_rules_show()
RETURNS TABLE (valid_from timestamptz, valid_to timestamptz, window_minutes integer,
               max_transfers smallint, in_force boolean, transfer_fares jsonb)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT w.valid_from, w.valid_to, w.window_minutes, w.max_transfers,
               w.valid_from <= now() AND (w.valid_to IS NULL OR now() < w.valid_to),
               (SELECT jsonb_object_agg(f.fare_code, f.amount) FROM (
                    SELECT DISTINCT ON (tr.fare_code) tr.fare_code, fa.amount
                    FROM public.transfer_rules tr
                    JOIN public.fares fa ON fa.code = tr.fare_code
                     AND fa.valid_from < coalesce(w.valid_to, 'infinity')
                     AND (fa.valid_to IS NULL OR fa.valid_to > w.valid_from)
                    ORDER BY tr.fare_code, fa.valid_from DESC) f)
        FROM public.transfer_windows w ORDER BY w.valid_from;
END $$;

-- A new transfer window from p_from on. The open period before it ends at p_from, unless a
-- trip boarding at or after p_from was already judged by it (that would rewrite charged
-- history, as fare_set refuses for fares).
CREATE OR REPLACE FUNCTION transfer_rule_set(p_window_minutes integer, p_max_transfers integer,
                                             p_from timestamptz, p_operator text, p_key text)
RETURNS TABLE (valid_from timestamptz, valid_to timestamptz, window_minutes integer,
               max_transfers smallint, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object('window_minutes', p_window_minutes,
                                          'max_transfers', p_max_transfers, 'from', p_from);
    v_done jsonb := public.claimed_admin_key(p_key, 'transfer', v_request);
    v_open public.transfer_windows;
BEGIN
    IF v_done IS NOT NULL THEN
        RETURN QUERY SELECT p_from, NULL::timestamptz, p_window_minutes,
                            p_max_transfers::smallint, true;
        RETURN;
    END IF;
    IF p_window_minutes IS NULL OR p_window_minutes NOT BETWEEN 1 AND 1440 THEN
        RAISE EXCEPTION 'a transfer window is 1 to 1440 minutes' USING ERRCODE = 'RC002';
    END IF;
    IF p_max_transfers IS NULL OR p_max_transfers NOT BETWEEN 0 AND 10 THEN
        RAISE EXCEPTION 'max transfers is 0 to 10' USING ERRCODE = 'RC002';
    END IF;
    LOCK TABLE public.transfer_windows IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO v_open FROM public.transfer_windows w ORDER BY w.valid_from DESC LIMIT 1;
    IF FOUND THEN
        PERFORM public.check_period_follows('the transfer window', v_open.valid_from,
                                            v_open.valid_to, p_from);
        IF EXISTS (SELECT 1 FROM public.trips t WHERE t.boarding_time >= p_from) THEN
            RAISE EXCEPTION 'trips from % on were already judged by the % minute transfer '
                            'window: that period cannot be rewritten', p_from,
                            v_open.window_minutes USING ERRCODE = 'RC004';
        END IF;
        UPDATE public.transfer_windows w SET valid_to = p_from WHERE w.valid_from = v_open.valid_from;
    END IF;
    INSERT INTO public.transfer_windows (valid_from, window_minutes, max_transfers)
    VALUES (p_from, p_window_minutes, p_max_transfers);
    PERFORM public.audit(0, p_operator, 'transfer', NULL,
                         v_request || jsonb_build_object('before', to_jsonb(v_open)));
    INSERT INTO public.admin_keys (idempotency_key, operation, request, result)
    VALUES (p_key, 'transfer', v_request, '{}'::jsonb);
    RETURN QUERY SELECT p_from, NULL::timestamptz, p_window_minutes, p_max_transfers::smallint,
                        false;
END $$;
