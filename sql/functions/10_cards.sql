-- Card operations: one round trip each, READ COMMITTED, the card row locked for writes.
-- Errors use SQLSTATE class RC: RC002 invalid input, RC003 not found, RC004 rejected by
-- a business rule, RC005 idempotency key reused with different parameters.

-- 1-128 letters, digits or ._:- (the CHECK of idempotency_keys; a bounded repeat such as
-- {1,128} makes PostgreSQL's regular expressions twenty times slower).
CREATE OR REPLACE FUNCTION is_idempotency_key(p_key text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_key ~ '^[A-Za-z0-9._:-]+$' AND length(p_key) <= 128
$$;

CREATE OR REPLACE FUNCTION check_idempotency_key(p_key text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF NOT coalesce(public.is_idempotency_key(p_key), false) THEN
        RAISE EXCEPTION 'invalid idempotency key: use 1-128 letters, digits or ._:-'
            USING ERRCODE = 'RC002';
    END IF;
END $$;

-- The card row, locked; raises RC003 when it does not exist.
CREATE OR REPLACE FUNCTION lock_card(p_card_id bigint) RETURNS public.cards
LANGUAGE plpgsql AS $$
DECLARE
    v_card public.cards;
BEGIN
    SELECT * INTO v_card FROM public.cards c WHERE c.card_id = p_card_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'card % not found', p_card_id USING ERRCODE = 'RC003';
    END IF;
    RETURN v_card;
END $$;

-- The earlier use of an idempotency key on this card, or NULL. Raises RC005 when it named
-- another request. Keys are scoped per card: call it with the card row locked.
DROP FUNCTION IF EXISTS claimed_key(text, text, jsonb);
CREATE OR REPLACE FUNCTION claimed_key(p_card_id bigint, p_key text, p_operation text,
                                       p_request jsonb)
RETURNS public.idempotency_keys
LANGUAGE plpgsql AS $$
DECLARE
    v_key public.idempotency_keys;
BEGIN
    SELECT * INTO v_key FROM public.idempotency_keys k
    WHERE k.card_id = p_card_id AND k.idempotency_key = p_key;
    IF FOUND AND (v_key.operation <> p_operation OR v_key.request <> p_request) THEN
        RAISE EXCEPTION 'idempotency key % was already used with different parameters', p_key
            USING ERRCODE = 'RC005';
    END IF;
    RETURN v_key;
END $$;

CREATE OR REPLACE FUNCTION recharge_card(
    p_card_id bigint, p_amount bigint, p_point_id integer, p_key text)
RETURNS TABLE (card_id bigint, recharge_id bigint, amount bigint, balance bigint,
               version bigint, recharged_at timestamptz, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object(
        'card_id', p_card_id, 'amount', p_amount, 'point_id', p_point_id);
    v_card public.cards;
    v_key public.idempotency_keys;
    v_limits public.limits;
    v_recharge_id bigint;
    v_balance bigint;
BEGIN
    PERFORM public.check_idempotency_key(p_key);
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'amount must be a positive whole number of pesos' USING ERRCODE = 'RC002';
    END IF;
    v_card := public.lock_card(p_card_id);
    v_key := public.claimed_key(p_card_id, p_key, 'recharge', v_request);
    IF v_key.idempotency_key IS NOT NULL THEN
        RETURN QUERY
            SELECT r.card_id, r.recharge_id, r.amount, r.balance_after, NULL::bigint,
                   r.recharged_at, true
            FROM public.recharges r
            WHERE r.card_id = v_key.card_id AND r.recharge_id = v_key.recharge_id;
        RETURN;
    END IF;
    IF v_card.status <> 'active' THEN
        RAISE EXCEPTION 'card % is %', p_card_id, v_card.status USING ERRCODE = 'RC004';
    END IF;
    SELECT * INTO v_limits FROM public.limits;
    IF p_amount < v_limits.min_recharge OR p_amount > v_limits.max_recharge THEN
        RAISE EXCEPTION 'amount % is outside the recharge limits [%, %]',
            p_amount, v_limits.min_recharge, v_limits.max_recharge USING ERRCODE = 'RC004';
    END IF;
    v_balance := v_card.balance + p_amount;
    IF v_balance > v_limits.max_balance THEN
        RAISE EXCEPTION 'balance would be %, above the maximum balance %',
            v_balance, v_limits.max_balance USING ERRCODE = 'RC004';
    END IF;
    IF p_point_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.recharge_points p WHERE p.point_id = p_point_id) THEN
        RAISE EXCEPTION 'recharge point % not found', p_point_id USING ERRCODE = 'RC003';
    END IF;
    INSERT INTO public.recharges (card_id, amount, point_id, recharged_at, balance_after)
    VALUES (p_card_id, p_amount, p_point_id, now(), v_balance)
    RETURNING recharges.recharge_id INTO v_recharge_id;
    INSERT INTO public.ledger (card_id, kind, amount, recharge_id, created_at, balance_after)
    VALUES (p_card_id, 'recharge', p_amount, v_recharge_id, now(), v_balance);
    UPDATE public.cards c
    SET balance = v_balance, version = c.version + 1, last_movement_at = now()
    WHERE c.card_id = p_card_id;
    INSERT INTO public.idempotency_keys (idempotency_key, operation, card_id, request, recharge_id)
    VALUES (p_key, 'recharge', p_card_id, v_request, v_recharge_id);
    RETURN QUERY SELECT p_card_id, v_recharge_id, p_amount, v_balance, v_card.version + 1, now(),
                        false;
END $$;

-- The service a leg belongs to: its route's type, else what its station serves.
CREATE OR REPLACE FUNCTION leg_service(p_station_type text, p_route_type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_route_type, CASE p_station_type
        WHEN 'CABLE' THEN 'CABLE'
        WHEN 'ZONAL_PARADERO' THEN 'ZONAL_UCE'
        ELSE 'TRONCAL' END)
$$;

CREATE OR REPLACE FUNCTION record_trip(
    p_card_id bigint, p_station_id integer, p_route_id integer, p_at timestamptz, p_key text)
RETURNS TABLE (card_id bigint, trip_id bigint, station_id integer, route_id integer,
               boarding_time timestamptz, fare_charged bigint, is_transfer boolean,
               transfer_group bigint, leg_number smallint, balance bigint, version bigint,
               replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object('card_id', p_card_id, 'station_id', p_station_id,
                                          'route_id', p_route_id, 'at', p_at);
    v_at timestamptz := coalesce(p_at, now());
    v_station_type text;
    v_route_type text;
    v_service text;
    v_card public.cards;
    v_key public.idempotency_keys;
    v_limits public.limits;
    v_window public.transfer_windows;
    v_prev public.trips;
    v_group_start timestamptz;
    v_transfer_fare text;
    v_fare_id smallint;
    v_fare bigint;
    v_trip_id bigint;
    v_group bigint;
    v_leg smallint := 1;
    v_balance bigint;
BEGIN
    PERFORM public.check_idempotency_key(p_key);
    IF v_at > now() + (SELECT make_interval(mins => lim.max_future_minutes) FROM public.limits lim)
    THEN
        RAISE EXCEPTION 'boarding time % is in the future (beyond the allowed clock skew of % '
                        'minutes)', v_at, (SELECT lim.max_future_minutes FROM public.limits lim)
            USING ERRCODE = 'RC002';
    END IF;
    SELECT s.station_type INTO v_station_type FROM public.stations s
    WHERE s.station_id = p_station_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'station % not found', p_station_id USING ERRCODE = 'RC003';
    END IF;
    IF p_route_id IS NOT NULL THEN
        SELECT r.route_type INTO v_route_type FROM public.routes r WHERE r.route_id = p_route_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'route % not found', p_route_id USING ERRCODE = 'RC003';
        END IF;
    END IF;
    v_service := public.leg_service(v_station_type, v_route_type);
    v_card := public.lock_card(p_card_id);
    v_key := public.claimed_key(p_card_id, p_key, 'trip', v_request);
    IF v_key.idempotency_key IS NOT NULL THEN
        RETURN QUERY
            SELECT t.card_id, t.trip_id, t.station_id, t.route_id, t.boarding_time,
                   t.fare_charged, t.is_transfer, t.transfer_group, t.leg_number,
                   t.balance_after, NULL::bigint, true
            FROM public.trips t
            WHERE t.card_id = v_key.card_id AND t.trip_id = v_key.trip_id;
        RETURN;
    END IF;
    IF v_card.status <> 'active' THEN
        RAISE EXCEPTION 'card % is %', p_card_id, v_card.status USING ERRCODE = 'RC004';
    END IF;
    IF v_at < v_card.issued_at THEN
        RAISE EXCEPTION 'boarding time % is before card % was issued (%)', v_at, p_card_id,
            v_card.issued_at USING ERRCODE = 'RC004';
    END IF;
    SELECT * INTO v_limits FROM public.limits;
    SELECT * INTO v_window FROM public.transfer_windows w
    WHERE w.valid_from <= v_at AND (w.valid_to IS NULL OR v_at < w.valid_to);

    -- A boarding within the window of the journey's first (paid) leg is a transfer (for a
    -- personalised card, under the transfer window valid at the boarding time).
    SELECT * INTO v_prev FROM public.trips t
    WHERE t.card_id = p_card_id AND t.boarding_time <= v_at
    ORDER BY t.boarding_time DESC, t.trip_id DESC LIMIT 1;
    IF FOUND AND v_card.user_id IS NOT NULL AND v_window.valid_from IS NOT NULL
       AND v_prev.leg_number <= v_window.max_transfers THEN
        SELECT t.boarding_time INTO v_group_start FROM public.trips t
        WHERE t.card_id = p_card_id AND t.trip_id = v_prev.transfer_group;
        IF v_at - v_group_start <= make_interval(mins => v_window.window_minutes) THEN
            SELECT tr.fare_code INTO v_transfer_fare FROM public.transfer_rules tr
            WHERE tr.from_service = v_prev.service AND tr.to_service = v_service;
        END IF;
    END IF;
    IF v_transfer_fare IS NOT NULL THEN
        v_group := v_prev.transfer_group;
        v_leg := v_prev.leg_number + 1;
    END IF;
    SELECT f.fare_id, f.amount INTO v_fare_id, v_fare FROM public.fares f
    WHERE f.code = coalesce(v_transfer_fare, CASE v_service WHEN 'CABLE' THEN 'CABLE'
                                                            ELSE 'STANDARD' END)
      AND f.valid_from <= v_at AND (f.valid_to IS NULL OR v_at < f.valid_to)
    ORDER BY f.valid_from DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no fare is valid at %', v_at USING ERRCODE = 'RC004';
    END IF;
    v_balance := v_card.balance - v_fare;
    -- Trips on credit are for personalised cards only: an anonymous card cannot be traced
    -- to anyone who would pay the debt back.
    IF v_card.user_id IS NULL AND v_balance < 0 THEN
        RAISE EXCEPTION 'insufficient balance: % for a fare of % (an anonymous card gets no '
            'credit; register it to a user for up to % on credit)', v_card.balance, v_fare,
            v_limits.credit_allowance USING ERRCODE = 'RC004';
    ELSIF v_balance < -v_limits.credit_allowance THEN
        RAISE EXCEPTION 'insufficient balance: % with a credit allowance of %, fare %',
            v_card.balance, v_limits.credit_allowance, v_fare USING ERRCODE = 'RC004';
    END IF;
    v_trip_id := nextval(pg_get_serial_sequence('public.trips', 'trip_id'));
    INSERT INTO public.trips (card_id, trip_id, station_id, route_id, service, boarding_time,
                              fare_id, fare_charged, is_transfer, transfer_group, leg_number,
                              balance_after)
    VALUES (p_card_id, v_trip_id, p_station_id, p_route_id, v_service, v_at, v_fare_id, v_fare,
            v_leg > 1, coalesce(v_group, v_trip_id), v_leg, v_balance);
    INSERT INTO public.ledger (card_id, kind, amount, trip_id, created_at, balance_after)
    VALUES (p_card_id, 'fare', -v_fare, v_trip_id, now(), v_balance);
    UPDATE public.cards c
    SET balance = v_balance, version = c.version + 1, last_movement_at = now()
    WHERE c.card_id = p_card_id;
    INSERT INTO public.idempotency_keys (idempotency_key, operation, card_id, request, trip_id)
    VALUES (p_key, 'trip', p_card_id, v_request, v_trip_id);
    RETURN QUERY SELECT p_card_id, v_trip_id, p_station_id, p_route_id, v_at, v_fare, v_leg > 1,
                        coalesce(v_group, v_trip_id), v_leg, v_balance, v_card.version + 1, false;
END $$;

-- Reads are plpgsql, not sql: a SECURITY DEFINER sql function is never inlined and
-- (before PostgreSQL 18) is planned on every call; plpgsql caches its plan per session.
-- The two hottest reads have no SET search_path clause: saving and restoring a setting on
-- every call costs more than the lookup itself. Instead every name in them is qualified,
-- operators included, so the caller's search_path cannot redirect anything these SECURITY
-- DEFINER functions use (relations and operators resolve in public and pg_catalog only).
CREATE OR REPLACE FUNCTION card_balances(p_card_ids bigint[])
RETURNS TABLE (card_id bigint, balance bigint, status text, version bigint,
               last_movement_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
    RETURN QUERY SELECT c.card_id, c.balance, c.status, c.version, c.last_movement_at
                 FROM public.cards c WHERE c.card_id OPERATOR(pg_catalog.=) ANY (p_card_ids);
END $$;

CREATE OR REPLACE FUNCTION card_balance(p_card_id bigint)
RETURNS TABLE (card_id bigint, balance bigint, status text, version bigint,
               last_movement_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$
BEGIN
    RETURN QUERY SELECT c.card_id, c.balance, c.status, c.version, c.last_movement_at
                 FROM public.cards c WHERE c.card_id OPERATOR(pg_catalog.=) p_card_id;
END $$;

CREATE OR REPLACE FUNCTION require_card(p_card_id bigint) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.cards c WHERE c.card_id = p_card_id) THEN
        RAISE EXCEPTION 'card % not found', p_card_id USING ERRCODE = 'RC003';
    END IF;
END $$;

-- A card's latest legs, newest first; pass the last row's (boarding_time, trip_id) to page.
CREATE OR REPLACE FUNCTION card_trips(
    p_card_id bigint, p_limit integer,
    p_before_time timestamptz DEFAULT NULL, p_before_id bigint DEFAULT NULL)
RETURNS TABLE (card_id bigint, trip_id bigint, boarding_time timestamptz, station_id integer,
               station_name text, route_id integer, route_code text, service text,
               fare_charged bigint, is_transfer boolean, transfer_group bigint,
               leg_number smallint, balance_after bigint)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM public.require_card(p_card_id);
    RETURN QUERY
        SELECT t.card_id, t.trip_id, t.boarding_time, t.station_id, s.name, t.route_id, r.code,
               t.service, t.fare_charged, t.is_transfer, t.transfer_group, t.leg_number,
               t.balance_after
        FROM public.trips t
        JOIN public.stations s ON s.station_id = t.station_id
        LEFT JOIN public.routes r ON r.route_id = t.route_id
        WHERE t.card_id = p_card_id
          AND (p_before_time IS NULL
               OR (t.boarding_time, t.trip_id) < (p_before_time, coalesce(p_before_id, 0)))
        ORDER BY t.boarding_time DESC, t.trip_id DESC
        LIMIT p_limit;
END $$;

CREATE OR REPLACE FUNCTION card_recharges(
    p_card_id bigint, p_limit integer,
    p_before_time timestamptz DEFAULT NULL, p_before_id bigint DEFAULT NULL)
RETURNS TABLE (card_id bigint, recharge_id bigint, recharged_at timestamptz, amount bigint,
               point_id integer, balance_after bigint)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM public.require_card(p_card_id);
    RETURN QUERY
        SELECT r.card_id, r.recharge_id, r.recharged_at, r.amount, r.point_id, r.balance_after
        FROM public.recharges r
        WHERE r.card_id = p_card_id
          AND (p_before_time IS NULL
               OR (r.recharged_at, r.recharge_id) < (p_before_time, coalesce(p_before_id, 0)))
        ORDER BY r.recharged_at DESC, r.recharge_id DESC
        LIMIT p_limit;
END $$;

-- Bulk top-ups: one call applies a chunk of rows with every rule and key of recharge_card
-- and returns one outcome per row (error_code is the SQLSTATE of the row's rejection).
-- Rows on cards that appear once in the chunk are applied set-based, in one statement;
-- rows on cards that appear more than once go through recharge_card one by one in file
-- order (each sees the balance the earlier ones left), so the result equals applying the
-- rows one at a time.
--
-- Every lookup is one chunk row to one row by primary key. Once a chunk has a few thousand
-- rows the planner, costing index probes as uncached reads, would rather scan the whole
-- cards table (hashing it, or the chunk's ids: 0.7-1.2 s per chunk at a million cards):
-- lookups are LATERAL (one probe per row) and hash and merge joins are off for the
-- UPDATE's join.
CREATE OR REPLACE FUNCTION recharge_bulk(p_point_id integer, p_lines integer[],
                                         p_cards bigint[], p_amounts bigint[], p_keys text[])
RETURNS TABLE (line integer, card_id bigint, amount bigint, recharge_id bigint, balance bigint,
               version bigint, recharged_at timestamptz, replayed boolean, error_code text,
               error text)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp
    SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
#variable_conflict use_column
DECLARE
    v_limits public.limits;
    v_sequence regclass := pg_get_serial_sequence('public.recharges', 'recharge_id');
    v_repeated bigint[];
    v_row record;
BEGIN
    IF p_point_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.recharge_points p WHERE p.point_id = p_point_id) THEN
        RAISE EXCEPTION 'recharge point % not found', p_point_id USING ERRCODE = 'RC003';
    END IF;
    SELECT * INTO v_limits FROM public.limits;

    -- Every card of the chunk locked, in id order (no deadlock between bulk runs), and the
    -- cards that appear more than once noted (NULL when there are none, the usual case).
    -- The next statement's snapshot then sees every write to these cards (and their keys)
    -- that committed before: the checks of recharge_card, in its order, for each
    -- single-occurrence row, and its writes for the rows that pass.
    SELECT array_agg(u.card_id) FILTER (WHERE u.n > 1) INTO v_repeated
    FROM (SELECT u.card_id, count(*) AS n FROM unnest(p_cards) AS u (card_id)
          GROUP BY u.card_id ORDER BY u.card_id) u
    LEFT JOIN LATERAL (
        SELECT 1 FROM public.cards c WHERE c.card_id = u.card_id FOR UPDATE) c ON true;
    RETURN QUERY
    WITH input AS (
        SELECT u.line, u.card_id, u.amount, u.key,
               coalesce(u.card_id = ANY (v_repeated), false) AS repeated
        FROM unnest(p_lines, p_cards, p_amounts, p_keys) AS u (line, card_id, amount, key)
    ), checked AS MATERIALIZED (
        SELECT i.line, i.card_id, i.amount, i.key, c.balance AS before, c.version,
               k.recharge_id AS done, x.request,
               CASE WHEN i.repeated THEN 'repeated'
                    WHEN NOT coalesce(public.is_idempotency_key(i.key), false)
                         OR i.amount <= 0 THEN 'RC002'
                    WHEN c.card_id IS NULL THEN 'RC003'
                    WHEN k.operation IS NOT NULL
                         AND (k.operation <> 'recharge' OR k.request <> x.request) THEN 'RC005'
                    WHEN k.operation IS NOT NULL THEN 'replay'
                    WHEN c.status <> 'active' THEN 'RC004'
                    WHEN i.amount < v_limits.min_recharge OR i.amount > v_limits.max_recharge
                         OR c.balance + i.amount > v_limits.max_balance THEN 'RC004'
                    ELSE 'ok' END AS outcome,
               c.status
        FROM input i
        CROSS JOIN LATERAL (SELECT jsonb_build_object('card_id', i.card_id, 'amount', i.amount,
                                                      'point_id', p_point_id) AS request) x
        LEFT JOIN LATERAL (
            SELECT c.card_id, c.status, c.balance, c.version FROM public.cards c
            WHERE c.card_id = i.card_id OFFSET 0) c ON true
        LEFT JOIN LATERAL (
            SELECT k.operation, k.request, k.recharge_id FROM public.idempotency_keys k
            WHERE k.card_id = i.card_id AND k.idempotency_key = i.key OFFSET 0) k
            ON NOT i.repeated
    ), ok AS MATERIALIZED (
        SELECT o.line, o.card_id, o.amount, o.key, o.request, o.before + o.amount AS after,
               o.version + 1 AS version, nextval(v_sequence) AS rid
        FROM checked o WHERE o.outcome = 'ok'
    ), new_recharges AS (
        INSERT INTO public.recharges (card_id, recharge_id, amount, point_id, recharged_at,
                                      balance_after)
        SELECT o.card_id, o.rid, o.amount, p_point_id, now(), o.after FROM ok o
    ), new_entries AS (
        INSERT INTO public.ledger (card_id, kind, amount, recharge_id, created_at, balance_after)
        SELECT o.card_id, 'recharge', o.amount, o.rid, now(), o.after FROM ok o
    ), new_keys AS (
        INSERT INTO public.idempotency_keys (idempotency_key, operation, card_id, request,
                                             recharge_id)
        SELECT o.key, 'recharge', o.card_id, o.request, o.rid FROM ok o
    ), moved AS (
        UPDATE public.cards c
        SET balance = o.after, version = o.version, last_movement_at = now()
        FROM ok o WHERE c.card_id = o.card_id
    )
    SELECT o.line, o.card_id, o.amount, o.rid, o.after, o.version, now(), false,
           NULL::text, NULL::text
    FROM ok o
    UNION ALL
    SELECT o.line, r.card_id, r.amount, r.recharge_id, r.balance_after, NULL::bigint,
           r.recharged_at, true, NULL::text, NULL::text
    FROM checked o
    CROSS JOIN LATERAL (
        SELECT r.card_id, r.amount, r.recharge_id, r.balance_after, r.recharged_at
        FROM public.recharges r
        WHERE r.card_id = o.card_id AND r.recharge_id = o.done OFFSET 0) r
    WHERE o.outcome = 'replay'
    UNION ALL
    SELECT o.line, o.card_id, o.amount, NULL::bigint, NULL::bigint, NULL::bigint,
           NULL::timestamptz, false, o.outcome,
           CASE o.outcome
               WHEN 'RC002' THEN CASE WHEN NOT coalesce(public.is_idempotency_key(o.key), false)
                   THEN 'invalid idempotency key: use 1-128 letters, digits or ._:-'
                   ELSE 'amount must be a positive whole number of pesos' END
               WHEN 'RC003' THEN format('card %s not found', o.card_id)
               WHEN 'RC005' THEN format('idempotency key %s was already used with different '
                                        'parameters', o.key)
               ELSE CASE WHEN o.status <> 'active' THEN format('card %s is %s', o.card_id, o.status)
                   WHEN o.amount < v_limits.min_recharge OR o.amount > v_limits.max_recharge
                   THEN format('amount %s is outside the recharge limits [%s, %s]', o.amount,
                               v_limits.min_recharge, v_limits.max_recharge)
                   ELSE format('balance would be %s, above the maximum balance %s',
                               o.before + o.amount, v_limits.max_balance) END
           END
    FROM checked o WHERE o.outcome NOT IN ('ok', 'replay', 'repeated');

    IF v_repeated IS NULL THEN
        RETURN;
    END IF;
    FOR v_row IN
        SELECT u.line, u.card_id, u.amount, u.key
        FROM unnest(p_lines, p_cards, p_amounts, p_keys) AS u (line, card_id, amount, key)
        WHERE u.card_id = ANY (v_repeated) ORDER BY u.line
    LOOP
        BEGIN
            RETURN QUERY SELECT v_row.line, x.card_id, x.amount, x.recharge_id, x.balance,
                                x.version, x.recharged_at, x.replayed, NULL::text, NULL::text
                         FROM public.recharge_card(v_row.card_id, v_row.amount, p_point_id,
                                                   v_row.key) x;
        EXCEPTION WHEN SQLSTATE 'RC002' OR SQLSTATE 'RC003' OR SQLSTATE 'RC004'
                    OR SQLSTATE 'RC005' THEN
            RETURN QUERY SELECT v_row.line, v_row.card_id, v_row.amount, NULL::bigint,
                                NULL::bigint, NULL::bigint, NULL::timestamptz, false,
                                SQLSTATE::text, SQLERRM;
        END;
    END LOOP;
END $$;
