-- Card operations: one round trip each, READ COMMITTED, the card row locked for writes.
-- Errors use SQLSTATE class RC: RC002 invalid input, RC003 not found, RC004 rejected by
-- a business rule, RC005 idempotency key reused with different parameters.

-- 1-128 letters, digits or ._:- (as the ledger's row check; a bounded repeat such as
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

-- Raises RC005: an idempotency key names another operation of this card.
CREATE OR REPLACE FUNCTION key_conflict(p_key text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE EXCEPTION 'idempotency key % was already used with different parameters', p_key
        USING ERRCODE = 'RC005';
END $$;

-- The movement an idempotency key already names on this card (NULL when none; RC005 when
-- it names a status change of the card). Keys are scoped per card: call it with the card
-- row locked.
CREATE OR REPLACE FUNCTION movement_by_key(p_card_id bigint, p_key text) RETURNS public.ledger
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_entry public.ledger;
BEGIN
    SELECT * INTO v_entry FROM public.ledger l
    WHERE l.card_id = p_card_id AND l.idempotency_key = p_key;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM public.idempotency_keys k
                             WHERE k.card_id = p_card_id AND k.idempotency_key = p_key) THEN
        PERFORM public.key_conflict(p_key);
    END IF;
    RETURN v_entry;
END $$;

-- One row per movement: the recharge is its ledger entry and carries its key. A replay
-- compares the stored amount and point with the request's.
--
-- The balance moves first: the UPDATE takes the card's row lock (a SELECT … FOR UPDATE
-- would write a WAL record of its own), and a rule that then fails rolls it back with the
-- rest. A movement is immutable once committed, so a replay found before the UPDATE needs
-- no lock; a movement with the same key that committed while this one waited for the row
-- is found after it, and the balance is put back (the card's version stays raised: a
-- version only ever grows, and one more step is harmless).
CREATE OR REPLACE FUNCTION recharge_card(
    p_card_id bigint, p_amount bigint, p_point_id integer, p_key text)
RETURNS TABLE (card_id bigint, recharge_id bigint, amount bigint, balance bigint,
               version bigint, recharged_at timestamptz, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_card public.cards;
    v_done public.ledger;
    v_limits public.limits;
    v_entry_id bigint;
BEGIN
    PERFORM public.check_idempotency_key(p_key);
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'amount must be a positive whole number of pesos' USING ERRCODE = 'RC002';
    END IF;
    v_done := public.movement_by_key(p_card_id, p_key);
    IF v_done.entry_id IS NULL THEN
        UPDATE public.cards c
        SET balance = c.balance + p_amount, version = c.version + 1, last_movement_at = now()
        WHERE c.card_id = p_card_id
        RETURNING c.* INTO v_card;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'card % not found', p_card_id USING ERRCODE = 'RC003';
        END IF;
        v_done := public.movement_by_key(p_card_id, p_key);
        IF v_done.entry_id IS NOT NULL THEN
            UPDATE public.cards c
            SET balance = c.balance - p_amount,
                last_movement_at = (SELECT max(l.created_at) FROM public.ledger l
                                    WHERE l.card_id = p_card_id)
            WHERE c.card_id = p_card_id;
        END IF;
    END IF;
    IF v_done.entry_id IS NOT NULL THEN
        IF v_done.kind <> 'recharge' OR v_done.amount <> p_amount
           OR v_done.point_id IS DISTINCT FROM p_point_id THEN
            PERFORM public.key_conflict(p_key);
        END IF;
        RETURN QUERY SELECT v_done.card_id, v_done.entry_id, v_done.amount, v_done.balance_after,
                            NULL::bigint, v_done.created_at, true;
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
    IF v_card.balance > v_limits.max_balance THEN
        RAISE EXCEPTION 'balance would be %, above the maximum balance %',
            v_card.balance, v_limits.max_balance USING ERRCODE = 'RC004';
    END IF;
    IF p_point_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.recharge_points p WHERE p.point_id = p_point_id) THEN
        RAISE EXCEPTION 'recharge point % not found', p_point_id USING ERRCODE = 'RC003';
    END IF;
    INSERT INTO public.ledger (card_id, kind, amount, balance_after, created_at, point_id,
                               idempotency_key)
    VALUES (p_card_id, 'recharge', p_amount, v_card.balance, now(), p_point_id, p_key)
    RETURNING ledger.entry_id INTO v_entry_id;
    RETURN QUERY SELECT p_card_id, v_entry_id, p_amount, v_card.balance, v_card.version, now(),
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

-- Who paid a leg (its amount and its change of benefit trips): a benefit trip, nothing (a
-- free transfer) or the rider's balance.
CREATE OR REPLACE FUNCTION paid_by(p_amount bigint, p_trips integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_trips = -1 THEN 'benefit' WHEN p_amount = 0 THEN 'transfer'
                ELSE 'balance' END
$$;

-- A refused tap's outcome (tap_core): the tap as it was sent, the SQLSTATE and the message.
CREATE OR REPLACE FUNCTION tap_refused(p_card_id bigint, p_station_id integer,
                                       p_route_id integer, p_at timestamptz, p_code text,
                                       p_error text)
RETURNS TABLE (card_id bigint, trip_id bigint, station_id integer, route_id integer,
               boarding_time timestamptz, fare_charged bigint, is_transfer boolean,
               transfer_group bigint, leg_number smallint, balance bigint, version bigint,
               paid_by text, replayed boolean, error_code text, error text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_card_id, NULL::bigint, p_station_id, p_route_id, p_at, NULL::bigint, NULL::boolean,
           NULL::bigint, NULL::smallint, NULL::bigint, NULL::bigint, NULL::text, false, p_code,
           p_error
$$;

-- Why a fare cannot be paid from a balance, or NULL when it can. Trips on credit are for
-- personalised cards only: an anonymous card cannot be traced to anyone who would pay the
-- debt back.
CREATE OR REPLACE FUNCTION unaffordable(p_user_id bigint, p_balance bigint, p_fare bigint,
                                        p_credit_allowance bigint) RETURNS text
LANGUAGE sql STABLE AS $$  -- (as format is: then it is inlined into a query)
    SELECT CASE
        WHEN p_user_id IS NULL AND p_balance - p_fare < 0 THEN
            format('insufficient balance: %s for a fare of %s (an anonymous card gets no '
                   'credit; register it to a user for up to %s on credit)', p_balance, p_fare,
                   p_credit_allowance)
        WHEN p_balance - p_fare < -p_credit_allowance THEN
            format('insufficient balance: %s with a credit allowance of %s, fare %s',
                   p_balance, p_credit_allowance, p_fare)
    END
$$;

-- A boarding tap, judged as of its boarding time (validators forward taps late and in
-- batches): one row with the leg and its charge, or an error code and message instead
-- (RC002 invalid, RC003 not found, RC004 refused by a rule, RC005 key reused), having
-- written nothing. record_trip raises the error; an upload reports it per row.
--
-- - A tap made while the card was usable is charged even when it arrives after the card
--   was blocked, reported lost or replaced (the status history says what the card was at
--   the boarding time); the fare of a replaced card's tap is taken from its replacement,
--   which holds the rider's money (and carries the leg and its key).
-- - A tap made after the card stopped being usable, before it was issued, or older than
--   limits.max_tap_age_days is refused.
-- - A late tap is rated against the legs boarded before it; the legs after it keep what
--   they were charged (charged history is never rewritten).
-- - A leg that costs a fare is paid by one of the card's benefit trips when it holds trips
--   of the boarding's month (the rider's balance is untouched: the city pays that fare);
--   a free transfer leg spends none. paid_by: benefit, transfer (nothing to pay) or balance.
DROP FUNCTION IF EXISTS tap_core(bigint, integer, integer, timestamptz, text);  -- (paid_by)
CREATE OR REPLACE FUNCTION tap_core(
    p_card_id bigint, p_station_id integer, p_route_id integer, p_at timestamptz, p_key text)
RETURNS TABLE (card_id bigint, trip_id bigint, station_id integer, route_id integer,
               boarding_time timestamptz, fare_charged bigint, is_transfer boolean,
               transfer_group bigint, leg_number smallint, balance bigint, version bigint,
               paid_by text, replayed boolean, error_code text, error text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_at timestamptz := coalesce(p_at, now());
    v_station_type text;
    v_route_type text;
    v_service text;
    v_card public.cards;
    v_charged public.cards;
    v_chain bigint[];
    v_status text;
    v_done public.ledger;
    v_limits public.limits;
    v_window public.transfer_windows;
    v_prev public.ledger;
    v_group_start timestamptz;
    v_transfer_fare text;
    v_fare_id smallint;
    v_fare bigint;
    v_entry_id bigint;
    v_group bigint;
    v_leg smallint := 1;
    v_balance bigint;
    v_month date;
    v_benefit text;
    v_unaffordable text;
BEGIN
    IF NOT coalesce(public.is_idempotency_key(p_key), false) THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC002',
            'invalid idempotency key: use 1-128 letters, digits or ._:-');
        RETURN;
    END IF;
    SELECT * INTO v_limits FROM public.limits;
    IF v_at > now() + make_interval(mins => v_limits.max_future_minutes) THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC002',
            format('boarding time %s is in the future (beyond the allowed clock skew '
                            'of %s minutes)', v_at, v_limits.max_future_minutes));
        RETURN;
    END IF;
    SELECT s.station_type INTO v_station_type FROM public.stations s
    WHERE s.station_id = p_station_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC003',
            format('station %s not found', p_station_id));
        RETURN;
    END IF;
    IF p_route_id IS NOT NULL THEN
        SELECT r.route_type INTO v_route_type FROM public.routes r WHERE r.route_id = p_route_id;
        IF NOT FOUND THEN
            RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC003',
            format('route %s not found', p_route_id));
            RETURN;
        END IF;
    END IF;
    v_service := public.leg_service(v_station_type, v_route_type);
    SELECT * INTO v_card FROM public.cards c WHERE c.card_id = p_card_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC003',
            format('card %s not found', p_card_id));
        RETURN;
    END IF;
    -- the card charged: this one, or the end of its chain of replacements (locked in the
    -- order they were made)
    v_charged := v_card;
    v_chain := ARRAY[p_card_id];
    WHILE v_charged.replaced_by IS NOT NULL LOOP
        SELECT * INTO v_charged FROM public.cards c WHERE c.card_id = v_charged.replaced_by
        FOR UPDATE;
        v_chain := v_chain || v_charged.card_id;
    END LOOP;
    -- a replay (on whichever card of the chain charged it) compares the stored boarding (a
    -- retry without --at matches any time)
    SELECT * INTO v_done FROM public.ledger l
    WHERE l.card_id = ANY (v_chain) AND l.idempotency_key = p_key;
    IF FOUND THEN
        IF v_done.kind <> 'fare' OR v_done.station_id <> p_station_id
           OR v_done.route_id IS DISTINCT FROM p_route_id
           OR (p_at IS NOT NULL AND v_done.boarding_time <> p_at) THEN
            RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC005',
            format('idempotency key %s was already used with different parameters', p_key));
            RETURN;
        END IF;
        RETURN QUERY SELECT v_done.card_id, v_done.entry_id, v_done.station_id, v_done.route_id,
                            v_done.boarding_time, -v_done.amount, v_done.leg_number > 1,
                            v_done.transfer_group, v_done.leg_number, v_done.balance_after,
                            NULL::bigint, public.paid_by(v_done.amount, v_done.trips), true,
                            NULL::text, NULL::text;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM public.idempotency_keys k
               WHERE k.card_id = p_card_id AND k.idempotency_key = p_key) THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC005',
            format('idempotency key %s was already used with different parameters', p_key));
        RETURN;
    END IF;
    -- what the card was at the boarding time: its last status change before it
    v_status := v_card.status;
    IF v_status <> 'active' OR v_card.replaced_by IS NOT NULL THEN
        SELECT coalesce((SELECT h.new_status FROM public.card_status_changes h
                         WHERE h.card_id = p_card_id AND h.changed_at <= v_at
                         ORDER BY h.changed_at DESC LIMIT 1), 'active')
        INTO v_status;
    END IF;
    IF v_status <> 'active' THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC004',
            CASE WHEN p_at IS NULL THEN format('card %s is %s', p_card_id, v_status)
                          ELSE format('card %s was %s at %s', p_card_id, v_status, v_at) END);
        RETURN;
    END IF;
    IF v_at < v_card.issued_at THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC004',
            format('boarding time %s is before card %s was issued (%s)', v_at,
                            p_card_id, v_card.issued_at));
        RETURN;
    END IF;
    IF v_at < now() - make_interval(days => v_limits.max_tap_age_days) THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC004',
            format('boarding time %s is older than %s days: too late to charge', v_at,
                            v_limits.max_tap_age_days));
        RETURN;
    END IF;
    SELECT * INTO v_window FROM public.transfer_windows w
    WHERE w.valid_from <= v_at AND (w.valid_to IS NULL OR v_at < w.valid_to);

    -- A boarding within the window of the journey's first (paid) leg is a transfer (for a
    -- personalised card, under the transfer window valid at the boarding time).
    SELECT * INTO v_prev FROM public.ledger l
    WHERE l.card_id = v_charged.card_id AND l.kind = 'fare' AND l.boarding_time <= v_at
    ORDER BY l.boarding_time DESC, l.entry_id DESC LIMIT 1;
    IF FOUND AND v_charged.user_id IS NOT NULL AND v_window.valid_from IS NOT NULL
       AND v_prev.leg_number <= v_window.max_transfers THEN
        SELECT l.boarding_time INTO v_group_start FROM public.ledger l
        WHERE l.card_id = v_charged.card_id AND l.entry_id = v_prev.transfer_group;
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
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC004',
            format('no fare is valid at %s', v_at));
        RETURN;
    END IF;
    v_month := date_trunc('month', v_at)::date;
    IF v_fare > 0 AND v_charged.benefit_trips > 0 AND v_charged.benefit_month = v_month THEN
        v_benefit := v_charged.benefit_criterion;  -- the city pays this fare
        v_fare := 0;
    END IF;
    v_balance := v_charged.balance - v_fare;
    v_unaffordable := public.unaffordable(v_charged.user_id, v_charged.balance, v_fare,
                                          v_limits.credit_allowance);
    IF v_unaffordable IS NOT NULL THEN
        RETURN QUERY SELECT * FROM public.tap_refused(
            p_card_id, p_station_id, p_route_id, p_at, 'RC004', v_unaffordable);
        RETURN;
    END IF;
    v_entry_id := nextval(pg_get_serial_sequence('public.ledger', 'entry_id'));
    INSERT INTO public.ledger (card_id, entry_id, kind, amount, balance_after, created_at,
                               station_id, route_id, service, boarding_time, fare_id,
                               transfer_group, leg_number, idempotency_key, trips, trips_month,
                               benefit)
    VALUES (v_charged.card_id, v_entry_id, 'fare', -v_fare, v_balance, now(), p_station_id,
            p_route_id, v_service, v_at, v_fare_id, coalesce(v_group, v_entry_id), v_leg, p_key,
            CASE WHEN v_benefit IS NOT NULL THEN -1 END,
            CASE WHEN v_benefit IS NOT NULL THEN v_month END,
            -- (a free transfer leg of a journey a benefit trip paid keeps its beneficiary)
            coalesce(v_benefit, CASE WHEN v_transfer_fare IS NOT NULL AND v_fare = 0
                                     THEN v_prev.benefit END));
    UPDATE public.cards c
    SET balance = v_balance, version = c.version + 1, last_movement_at = now(),
        benefit_trips = c.benefit_trips - (v_benefit IS NOT NULL)::integer
    WHERE c.card_id = v_charged.card_id;
    RETURN QUERY SELECT v_charged.card_id, v_entry_id, p_station_id, p_route_id, v_at, v_fare,
                        v_leg > 1, coalesce(v_group, v_entry_id), v_leg, v_balance,
                        v_charged.version + 1,
                        public.paid_by(-v_fare, CASE WHEN v_benefit IS NOT NULL THEN -1 END),
                        false, NULL::text, NULL::text;
END $$;

DROP FUNCTION IF EXISTS record_trip(bigint, integer, integer, timestamptz, text);  -- (paid_by)
CREATE OR REPLACE FUNCTION record_trip(
    p_card_id bigint, p_station_id integer, p_route_id integer, p_at timestamptz, p_key text)
RETURNS TABLE (card_id bigint, trip_id bigint, station_id integer, route_id integer,
               boarding_time timestamptz, fare_charged bigint, is_transfer boolean,
               transfer_group bigint, leg_number smallint, balance bigint, version bigint,
               paid_by text, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v record;
BEGIN
    SELECT * INTO v FROM public.tap_core(p_card_id, p_station_id, p_route_id, p_at, p_key) t;
    IF v.error_code IS NOT NULL THEN
        RAISE EXCEPTION '%', v.error USING ERRCODE = v.error_code;
    END IF;
    RETURN QUERY SELECT v.card_id, v.trip_id, v.station_id, v.route_id, v.boarding_time,
                        v.fare_charged, v.is_transfer, v.transfer_group, v.leg_number,
                        v.balance, v.version, v.paid_by, v.replayed;
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
        SELECT l.card_id, l.entry_id, l.boarding_time, l.station_id, s.name, l.route_id, r.code,
               l.service, -l.amount, l.leg_number > 1, l.transfer_group, l.leg_number,
               l.balance_after
        FROM public.ledger l
        JOIN public.stations s ON s.station_id = l.station_id
        LEFT JOIN public.routes r ON r.route_id = l.route_id
        WHERE l.card_id = p_card_id AND l.kind = 'fare'
          AND (p_before_time IS NULL
               OR (l.boarding_time, l.entry_id) < (p_before_time, coalesce(p_before_id, 0)))
        ORDER BY l.boarding_time DESC, l.entry_id DESC
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
        SELECT l.card_id, l.entry_id, l.created_at, l.amount, l.point_id, l.balance_after
        FROM public.ledger l
        WHERE l.card_id = p_card_id AND l.kind = 'recharge'
          AND (p_before_time IS NULL
               OR (l.created_at, l.entry_id) < (p_before_time, coalesce(p_before_id, 0)))
        ORDER BY l.created_at DESC, l.entry_id DESC
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
    v_sequence regclass := pg_get_serial_sequence('public.ledger', 'entry_id');
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
               k.entry_id AS done, k.amount AS done_amount, k.balance_after AS done_balance,
               k.created_at AS done_at,
               CASE WHEN i.repeated THEN 'repeated'
                    WHEN NOT coalesce(public.is_idempotency_key(i.key), false)
                         OR i.amount <= 0 THEN 'RC002'
                    WHEN c.card_id IS NULL THEN 'RC003'
                    WHEN (k.entry_id IS NOT NULL
                          AND (k.kind <> 'recharge' OR k.amount <> i.amount
                               OR k.point_id IS DISTINCT FROM p_point_id))
                         OR sk.status_key THEN 'RC005'
                    WHEN k.entry_id IS NOT NULL THEN 'replay'
                    WHEN c.status <> 'active' THEN 'RC004'
                    WHEN i.amount < v_limits.min_recharge OR i.amount > v_limits.max_recharge
                         OR c.balance + i.amount > v_limits.max_balance THEN 'RC004'
                    ELSE 'ok' END AS outcome,
               c.status
        FROM input i
        LEFT JOIN LATERAL (
            SELECT c.card_id, c.status, c.balance, c.version FROM public.cards c
            WHERE c.card_id = i.card_id OFFSET 0) c ON true
        LEFT JOIN LATERAL (
            SELECT k.entry_id, k.kind, k.amount, k.point_id, k.balance_after, k.created_at
            FROM public.ledger k
            WHERE k.card_id = i.card_id AND k.idempotency_key = i.key OFFSET 0) k
            ON NOT i.repeated
        LEFT JOIN LATERAL (  -- a status change's key
            SELECT true AS status_key FROM public.idempotency_keys sk
            WHERE sk.card_id = i.card_id AND sk.idempotency_key = i.key OFFSET 0) sk
            ON NOT i.repeated AND k.entry_id IS NULL
    ), ok AS MATERIALIZED (
        SELECT o.line, o.card_id, o.amount, o.key, o.before + o.amount AS after,
               o.version + 1 AS version, nextval(v_sequence) AS entry_id
        FROM checked o WHERE o.outcome = 'ok'
    ), booked AS (
        INSERT INTO public.ledger (card_id, entry_id, kind, amount, balance_after, created_at,
                                   point_id, idempotency_key)
        SELECT o.card_id, o.entry_id, 'recharge', o.amount, o.after, now(), p_point_id, o.key
        FROM ok o
    ), moved AS (
        UPDATE public.cards c
        SET balance = o.after, version = o.version, last_movement_at = now()
        FROM ok o WHERE c.card_id = o.card_id
    )
    SELECT o.line, o.card_id, o.amount, o.entry_id, o.after, o.version, now(), false,
           NULL::text, NULL::text
    FROM ok o
    UNION ALL
    SELECT o.line, o.card_id, o.done_amount, o.done, o.done_balance, NULL::bigint, o.done_at,
           true, NULL::text, NULL::text
    FROM checked o WHERE o.outcome = 'replay'
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
