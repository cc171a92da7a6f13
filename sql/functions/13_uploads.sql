-- Validator uploads: stage a file's taps (tap_upload_begin, tap_upload_stage), cut them into
-- chunks of whole cards (tap_upload_chunks), apply each chunk in one transaction
-- (tap_upload_apply: each card's taps in boarding-time order, with the rules and keys of a
-- single tap), then drop the staged rows (tap_upload_end).
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

-- One chunk: every staged tap of the cards in [p_first, p_last], one outcome per tap
-- (error_code: the SQLSTATE of a refusal). Each card's taps are charged in boarding-time
-- order (then line order), in rounds: round n settles every card's n-th tap. The chunk's
-- taps are numbered into rounds once (the session's temporary table tap_chunk); each round
-- is judged once into tap_round, as tap_core judges a tap. A tap charged plainly to its
-- own active card, or refused only for want of balance (`unaffordable`, the message), is
-- settled set-based; a replay, a key conflict, any other refusal and a replaced card's tap
-- (judged false) go through tap_core.
-- Every join here matches a round's taps to a few rows each by index; a hash or merge join
-- would read the whole cards table once per round, hence the two settings.
DROP FUNCTION IF EXISTS tap_upload_round(text, bigint, bigint, bigint);
CREATE OR REPLACE FUNCTION tap_upload_apply(p_upload text, p_first bigint, p_last bigint)
RETURNS TABLE (line integer, card_id bigint, station_id integer, route_id integer,
               boarding_time timestamptz, idempotency_key text, trip_id bigint,
               fare_charged bigint, is_transfer boolean, balance bigint, version bigint,
               replayed boolean, error_code text, error text)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp SET jit = off
    SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
DECLARE
    v_rounds bigint;
    v_tap record;
BEGIN
    IF to_regclass('pg_temp.tap_chunk') IS NULL THEN
        CREATE TEMPORARY TABLE tap_chunk (
            round bigint, line integer, card_id bigint, station_id integer, route_id integer,
            boarding_time timestamptz, idempotency_key text, service text, known boolean
        ) ON COMMIT DELETE ROWS;
        CREATE TEMPORARY TABLE tap_round (
            line integer, card_id bigint, station_id integer, route_id integer,
            boarding_time timestamptz, idempotency_key text, service text, fare_id smallint,
            fare bigint, balance bigint, transfer_group bigint, leg_number smallint,
            benefit text, trips_month date, judged boolean, unaffordable text, entry_id bigint
        ) ON COMMIT DELETE ROWS;
    END IF;
    DELETE FROM pg_temp.tap_chunk;
    -- known: the station and the route exist (a tap naming others goes to tap_core)
    INSERT INTO pg_temp.tap_chunk
    SELECT row_number() OVER (PARTITION BY u.card_id ORDER BY u.boarding_time, u.line),
           u.line, u.card_id, u.station_id, u.route_id, u.boarding_time, u.idempotency_key,
           public.leg_service(s.station_type, r.route_type),
           s.station_type IS NOT NULL AND (u.route_id IS NULL OR r.route_type IS NOT NULL)
    FROM public.tap_uploads u
    LEFT JOIN public.stations s ON s.station_id = u.station_id
    LEFT JOIN public.routes r ON r.route_id = u.route_id
    WHERE u.upload_id = p_upload AND u.card_id BETWEEN p_first AND p_last;
    PERFORM 1 FROM pg_temp.tap_chunk t JOIN public.cards c ON c.card_id = t.card_id
    WHERE t.round = 1 ORDER BY c.card_id FOR UPDATE OF c;
    SELECT max(t.round) INTO v_rounds FROM pg_temp.tap_chunk t;
    FOR v_round IN 1 .. coalesce(v_rounds, 0) LOOP
        DELETE FROM pg_temp.tap_round;
        INSERT INTO pg_temp.tap_round
        SELECT j.*, CASE WHEN j.judged AND j.unaffordable IS NULL
                         THEN nextval(pg_get_serial_sequence('public.ledger', 'entry_id')) END
        FROM (
            SELECT t.line, t.card_id, t.station_id, t.route_id, t.boarding_time,
                   t.idempotency_key, t.service, f.fare_id, paid.fare, c.balance - paid.fare,
                   CASE WHEN tr.fare_code IS NOT NULL THEN p.transfer_group END,
                   CASE WHEN tr.fare_code IS NOT NULL THEN p.leg_number + 1 ELSE 1 END::smallint,
                   coalesce(b.benefit, CASE WHEN tr.fare_code IS NOT NULL AND f.amount = 0
                                            THEN p.benefit END),
                   b.month,
                   coalesce(public.is_idempotency_key(t.idempotency_key)
                   AND t.boarding_time <= now() + make_interval(mins => lim.max_future_minutes)
                   AND t.boarding_time >= now() - make_interval(days => lim.max_tap_age_days)
                   AND t.known AND c.status = 'active' AND c.replaced_by IS NULL
                   AND t.boarding_time >= c.issued_at
                   AND f.fare_id IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM public.ledger l
                                   WHERE l.card_id = t.card_id
                                     AND l.idempotency_key = t.idempotency_key)
                   AND NOT EXISTS (SELECT 1 FROM public.idempotency_keys k
                                   WHERE k.card_id = t.card_id
                                     AND k.idempotency_key = t.idempotency_key),
                            false) AS judged,
                   public.unaffordable(c.user_id, c.balance, paid.fare, lim.credit_allowance)
                       AS unaffordable
            FROM pg_temp.tap_chunk t
            CROSS JOIN public.limits lim
            LEFT JOIN public.cards c ON c.card_id = t.card_id
            LEFT JOIN public.transfer_windows w
                   ON w.valid_from <= t.boarding_time
                  AND (w.valid_to IS NULL OR t.boarding_time < w.valid_to)
            -- the leg before: a boarding within the window of its journey's first leg is a
            -- transfer
            LEFT JOIN LATERAL (
                SELECT l.leg_number, l.transfer_group, l.service, l.benefit FROM public.ledger l
                WHERE l.card_id = t.card_id AND l.kind = 'fare'
                  AND l.boarding_time <= t.boarding_time
                ORDER BY l.boarding_time DESC, l.entry_id DESC LIMIT 1
            ) p ON c.user_id IS NOT NULL AND w.valid_from IS NOT NULL
            LEFT JOIN public.ledger g
                   ON g.card_id = t.card_id AND g.entry_id = p.transfer_group
                  AND p.leg_number <= w.max_transfers
            LEFT JOIN public.transfer_rules tr
                   ON g.entry_id IS NOT NULL
                  AND t.boarding_time - g.boarding_time <= make_interval(mins => w.window_minutes)
                  AND tr.from_service = p.service AND tr.to_service = t.service
            LEFT JOIN LATERAL (
                SELECT f.fare_id, f.amount FROM public.fares f
                WHERE f.code = coalesce(tr.fare_code, CASE t.service WHEN 'CABLE' THEN 'CABLE'
                                                                     ELSE 'STANDARD' END)
                  AND f.valid_from <= t.boarding_time
                  AND (f.valid_to IS NULL OR t.boarding_time < f.valid_to)
                ORDER BY f.valid_from DESC LIMIT 1
            ) f ON true
            -- a leg that costs a fare spends a benefit trip of the boarding's month, if any
            -- is left; then the balance pays nothing
            LEFT JOIN LATERAL (
                SELECT c.benefit_criterion AS benefit, c.benefit_month AS month
                WHERE f.amount > 0 AND c.benefit_trips > 0
                  AND c.benefit_month = date_trunc('month', t.boarding_time)::date
            ) b ON true
            CROSS JOIN LATERAL (
                SELECT CASE WHEN b.benefit IS NULL THEN f.amount ELSE 0 END AS fare
            ) paid
            WHERE t.round = v_round
            OFFSET 0  -- (each tap judged once: the outer query names judged twice)
        ) j;
        INSERT INTO public.ledger (card_id, entry_id, kind, amount, balance_after, created_at,
                                   station_id, route_id, service, boarding_time, fare_id,
                                   transfer_group, leg_number, idempotency_key, trips,
                                   trips_month, benefit)
        SELECT p.card_id, p.entry_id, 'fare', -p.fare, p.balance, now(), p.station_id,
               p.route_id, p.service, p.boarding_time, p.fare_id,
               coalesce(p.transfer_group, p.entry_id), p.leg_number, p.idempotency_key,
               CASE WHEN p.trips_month IS NOT NULL THEN -1 END, p.trips_month, p.benefit
        FROM pg_temp.tap_round p WHERE p.entry_id IS NOT NULL;
        RETURN QUERY
            WITH charged AS (
                UPDATE public.cards c
                SET balance = p.balance, version = c.version + 1, last_movement_at = now(),
                    benefit_trips = c.benefit_trips - (p.trips_month IS NOT NULL)::integer
                FROM pg_temp.tap_round p
                WHERE p.entry_id IS NOT NULL AND c.card_id = p.card_id
                RETURNING p.line, p.card_id, p.station_id, p.route_id, p.boarding_time,
                          p.idempotency_key, p.entry_id, p.fare, p.leg_number > 1, p.balance,
                          c.version, false, NULL::text, NULL::text
            )
            SELECT * FROM charged;
        RETURN QUERY
            SELECT p.line, p.card_id, p.station_id, p.route_id, p.boarding_time,
                   p.idempotency_key, NULL::bigint, NULL::bigint, NULL::boolean, NULL::bigint,
                   NULL::bigint, false, 'RC004'::text, p.unaffordable
            FROM pg_temp.tap_round p WHERE p.judged AND p.unaffordable IS NOT NULL;
        FOR v_tap IN
            SELECT p.line, p.card_id, p.station_id, p.route_id, p.boarding_time,
                   p.idempotency_key
            FROM pg_temp.tap_round p WHERE NOT p.judged ORDER BY p.card_id
        LOOP
            RETURN QUERY
                SELECT v_tap.line, coalesce(t.card_id, v_tap.card_id), v_tap.station_id,
                       v_tap.route_id, v_tap.boarding_time, v_tap.idempotency_key, t.trip_id,
                       t.fare_charged, t.is_transfer, t.balance, t.version, t.replayed,
                       t.error_code, t.error
                FROM public.tap_core(v_tap.card_id, v_tap.station_id, v_tap.route_id,
                                     v_tap.boarding_time, v_tap.idempotency_key) t;
        END LOOP;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION tap_upload_end(p_upload text) RETURNS void
LANGUAGE sql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DELETE FROM public.tap_uploads u WHERE u.upload_id = p_upload
$$;
