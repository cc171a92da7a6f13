-- Validator uploads: stage a file's taps (tap_upload_begin, tap_upload_stage), cut them into
-- chunks of whole cards (tap_upload_chunks), apply each chunk in one transaction
-- (tap_upload_apply: each card's taps in boarding-time order, each through tap_core with
-- every rule and key of a single tap), then drop the staged rows (tap_upload_end).
-- Chunks hold disjoint cards, so they can be applied side by side on several connections.

-- A new upload (or a rerun of the same file): its earlier staged rows go, and so do the
-- rows of uploads left behind more than a day ago (a run that was killed).
CREATE OR REPLACE FUNCTION tap_upload_begin(p_upload text) RETURNS void
LANGUAGE sql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DELETE FROM public.tap_uploads u
    WHERE u.upload_id = p_upload OR u.staged_at < now() - interval '1 day'
$$;

CREATE OR REPLACE FUNCTION tap_upload_stage(p_upload text, p_lines integer[], p_cards bigint[],
                                            p_stations integer[], p_routes integer[],
                                            p_times text[], p_keys text[])
RETURNS integer
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_rows integer;
BEGIN
    INSERT INTO public.tap_uploads (upload_id, card_id, boarding_time, line, station_id,
                                    route_id, idempotency_key)
    SELECT p_upload, u.card_id, u.at::timestamptz, u.line, u.station_id, u.route_id, u.key
    FROM unnest(p_lines, p_cards, p_stations, p_routes, p_times, p_keys)
         AS u (line, card_id, station_id, route_id, at, key);
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END $$;

-- Card ranges [first_card, last_card] of about p_rows staged taps each (a card's taps are
-- never split).
CREATE OR REPLACE FUNCTION tap_upload_chunks(p_upload text, p_rows integer)
RETURNS TABLE (first_card bigint, last_card bigint, taps bigint)
LANGUAGE sql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH per_card AS (
        SELECT u.card_id, count(*) AS taps FROM public.tap_uploads u
        WHERE u.upload_id = p_upload GROUP BY u.card_id
    ), numbered AS (
        SELECT c.card_id, c.taps,
               ((sum(c.taps) OVER (ORDER BY c.card_id))::bigint - c.taps) / greatest(p_rows, 1)
                   AS chunk
        FROM per_card c
    )
    SELECT min(n.card_id), max(n.card_id), sum(n.taps)::bigint
    FROM numbered n GROUP BY n.chunk ORDER BY 1
$$;

-- One chunk: every staged tap of the cards in [p_first, p_last], card by card in boarding-
-- time order (then line order), one outcome per tap (error_code: the SQLSTATE of a refusal).
CREATE OR REPLACE FUNCTION tap_upload_apply(p_upload text, p_first bigint, p_last bigint)
RETURNS TABLE (line integer, card_id bigint, station_id integer, route_id integer,
               boarding_time timestamptz, idempotency_key text, trip_id bigint,
               fare_charged bigint, is_transfer boolean, balance bigint, version bigint,
               replayed boolean, error_code text, error text)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp SET jit = off AS $$
#variable_conflict use_column
DECLARE
    v_tap record;
BEGIN
    FOR v_tap IN
        SELECT u.line, u.card_id, u.station_id, u.route_id, u.boarding_time, u.idempotency_key
        FROM public.tap_uploads u
        WHERE u.upload_id = p_upload AND u.card_id BETWEEN p_first AND p_last
        ORDER BY u.card_id, u.boarding_time, u.line
    LOOP
        RETURN QUERY
            SELECT v_tap.line, coalesce(t.card_id, v_tap.card_id), v_tap.station_id,
                   v_tap.route_id, v_tap.boarding_time, v_tap.idempotency_key, t.trip_id,
                   t.fare_charged, t.is_transfer, t.balance, t.version, t.replayed,
                   t.error_code, t.error
            FROM public.tap_core(v_tap.card_id, v_tap.station_id, v_tap.route_id,
                                 v_tap.boarding_time, v_tap.idempotency_key) t;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION tap_upload_end(p_upload text) RETURNS void
LANGUAGE sql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DELETE FROM public.tap_uploads u WHERE u.upload_id = p_upload
$$;
