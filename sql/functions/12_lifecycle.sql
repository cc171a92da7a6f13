-- A card's life: users, issue, status changes, replacement, reversal, fares, limits, audit.
-- Writes lock the card row, are idempotent by key (per card; admin_keys for actions that
-- concern no existing card), and write one audit row each. Errors: RC002 invalid input,
-- RC003 not found, RC004 rejected by a rule, RC005 key reused with other parameters.

CREATE OR REPLACE FUNCTION audit(p_card_id bigint, p_operator text, p_action text, p_reason text,
                                 p_details jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO public.audit_log (card_id, operator, action, reason, details)
    VALUES (p_card_id, coalesce(nullif(p_operator, ''), session_user), p_action, p_reason,
            p_details)
$$;

-- The earlier result of an admin key, or NULL (RC005 when it named another request).
CREATE OR REPLACE FUNCTION claimed_admin_key(p_key text, p_operation text, p_request jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_key public.admin_keys;
BEGIN
    PERFORM public.check_idempotency_key(p_key);
    PERFORM pg_advisory_xact_lock(hashtextextended('admin-key:' || p_key, 0));
    SELECT * INTO v_key FROM public.admin_keys k WHERE k.idempotency_key = p_key;
    IF FOUND AND (v_key.operation <> p_operation OR v_key.request <> p_request) THEN
        RAISE EXCEPTION 'idempotency key % was already used with different parameters', p_key
            USING ERRCODE = 'RC005';
    END IF;
    RETURN v_key.result;
END $$;

-- A new user, with the eligibility for benefits when known (checked by user_fields_check,
-- sql/functions/65_desk.sql). The request of a key names only what was given, so keys used
-- before birth date, Sisbén and disability existed still replay.
CREATE OR REPLACE FUNCTION user_add(p_document text, p_name text, p_birth_date date,
                                    p_sisben text, p_disability boolean, p_operator text,
                                    p_key text)
RETURNS TABLE (user_id bigint, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_sisben text := public.sisben_group(p_sisben);
    v_request jsonb := jsonb_build_object('document', p_document, 'name', p_name)
        || jsonb_strip_nulls(jsonb_build_object('birth_date', p_birth_date, 'sisben', v_sisben,
                                                'disability', nullif(p_disability, false)));
    v_done jsonb := public.claimed_admin_key(p_key, 'user', v_request);
    v_user_id bigint;
BEGIN
    IF v_done IS NOT NULL THEN
        RETURN QUERY SELECT (v_done ->> 'user_id')::bigint, true;
        RETURN;
    END IF;
    IF p_document !~ '^[A-Za-z0-9-]{3,32}$' THEN
        RAISE EXCEPTION 'document % must be 3-32 letters, digits or -', p_document
            USING ERRCODE = 'RC002';
    END IF;
    PERFORM public.user_fields_check(coalesce(p_name, ''), NULL, p_birth_date);
    IF EXISTS (SELECT 1 FROM public.users u WHERE u.document = p_document) THEN
        RAISE EXCEPTION 'a user with document % is already registered', p_document
            USING ERRCODE = 'RC004';
    END IF;
    v_user_id := nextval('public.user_id_seq');
    INSERT INTO public.users (user_id, document, full_name, registered_at, birth_date,
                              sisben_group, disability)
    VALUES (v_user_id, p_document, btrim(p_name), now(), p_birth_date, v_sisben,
            coalesce(p_disability, false));
    PERFORM public.audit(0, p_operator, 'user', NULL,
                         jsonb_build_object('user_id', v_user_id, 'document', p_document)
                         || (v_request - 'document' - 'name'));
    INSERT INTO public.admin_keys (idempotency_key, operation, request, result)
    VALUES (p_key, 'user', v_request, jsonb_build_object('user_id', v_user_id));
    RETURN QUERY SELECT v_user_id, false;
END $$;

CREATE OR REPLACE FUNCTION card_issue(p_user_id bigint, p_operator text, p_key text)
RETURNS TABLE (card_id bigint, user_id bigint, status text, balance bigint, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object('user_id', p_user_id);
    v_done jsonb := public.claimed_admin_key(p_key, 'issue', v_request);
    v_card_id bigint;
BEGIN
    IF v_done IS NOT NULL THEN
        RETURN QUERY SELECT c.card_id, c.user_id, c.status, c.balance, true
                     FROM public.cards c WHERE c.card_id = (v_done ->> 'card_id')::bigint;
        RETURN;
    END IF;
    IF p_user_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.users u WHERE u.user_id = p_user_id) THEN
        RAISE EXCEPTION 'user % not found', p_user_id USING ERRCODE = 'RC003';
    END IF;
    v_card_id := nextval('public.card_id_seq');
    INSERT INTO public.cards (card_id, user_id, status, balance, version, issued_at)
    VALUES (v_card_id, p_user_id, 'active', 0, 0, now());
    PERFORM public.audit(v_card_id, p_operator, 'issue', NULL,
                         jsonb_build_object('user_id', p_user_id));
    INSERT INTO public.admin_keys (idempotency_key, operation, request, result)
    VALUES (p_key, 'issue', v_request, jsonb_build_object('card_id', v_card_id));
    RETURN QUERY SELECT v_card_id, p_user_id, 'active'::text, 0::bigint, false;
END $$;

-- The earlier status change an idempotency key names on this card, or NULL (RC005 when it
-- named another request, or names a movement of the card). Status changes move no money:
-- their keys are the only ones kept apart from the ledger. Call it with the card row locked.
CREATE OR REPLACE FUNCTION claimed_status_key(p_card_id bigint, p_key text, p_request jsonb)
RETURNS public.idempotency_keys
LANGUAGE plpgsql AS $$
DECLARE
    v_key public.idempotency_keys;
BEGIN
    SELECT * INTO v_key FROM public.idempotency_keys k
    WHERE k.card_id = p_card_id AND k.idempotency_key = p_key;
    IF (FOUND AND v_key.request <> p_request)
       OR EXISTS (SELECT 1 FROM public.ledger l
                  WHERE l.card_id = p_card_id AND l.idempotency_key = p_key) THEN
        PERFORM public.key_conflict(p_key);
    END IF;
    RETURN v_key;
END $$;

-- block (active → blocked), unblock (blocked → active), lost (active|blocked|inactive → lost,
-- final). A replaced card changes no more.
CREATE OR REPLACE FUNCTION card_set_status(p_card_id bigint, p_action text, p_reason text,
                                           p_operator text, p_key text)
RETURNS TABLE (card_id bigint, status text, previous_status text, changed_at timestamptz,
               version bigint, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object('action', p_action, 'reason', p_reason);
    v_card public.cards;
    v_key public.idempotency_keys;
    v_new text := CASE p_action WHEN 'block' THEN 'blocked' WHEN 'unblock' THEN 'active'
                                WHEN 'lost' THEN 'lost' END;
    v_result jsonb;
BEGIN
    PERFORM public.check_idempotency_key(p_key);
    IF v_new IS NULL THEN
        RAISE EXCEPTION 'unknown status action %', p_action USING ERRCODE = 'RC002';
    END IF;
    v_card := public.lock_card(p_card_id);
    v_key := public.claimed_status_key(p_card_id, p_key, v_request);
    IF v_key.idempotency_key IS NOT NULL THEN
        RETURN QUERY SELECT p_card_id, v_key.result ->> 'status', v_key.result ->> 'previous_status',
                            (v_key.result ->> 'changed_at')::timestamptz, NULL::bigint, true;
        RETURN;
    END IF;
    IF v_card.replaced_by IS NOT NULL THEN
        RAISE EXCEPTION 'card % was replaced by card %; it can no longer change',
            p_card_id, v_card.replaced_by USING ERRCODE = 'RC004';
    END IF;
    IF NOT ((p_action = 'block' AND v_card.status = 'active')
            OR (p_action = 'unblock' AND v_card.status = 'blocked')
            OR (p_action = 'lost' AND v_card.status <> 'lost')) THEN
        RAISE EXCEPTION 'card % is %: cannot %', p_card_id, v_card.status, p_action
            USING ERRCODE = 'RC004',
                  HINT = 'block needs an active card, unblock a blocked one; lost is final';
    END IF;
    PERFORM set_config('recharge.operator', coalesce(nullif(p_operator, ''), session_user), true);
    PERFORM set_config('recharge.reason', coalesce(p_reason, ''), true);
    -- the status trigger records the change and its audit row
    UPDATE public.cards c SET status = v_new, version = c.version + 1 WHERE c.card_id = p_card_id;
    v_result := jsonb_build_object('status', v_new, 'previous_status', v_card.status,
                                   'changed_at', now());
    INSERT INTO public.idempotency_keys (idempotency_key, operation, card_id, request, result)
    VALUES (p_key, 'status', p_card_id, v_request, v_result);
    RETURN QUERY SELECT p_card_id, v_new, v_card.status, now(), v_card.version + 1, false;
END $$;

-- A personalised card that is blocked or lost moves its balance to a new card of the same
-- user: two linked `transfer` entries in one transaction; the old card ends at 0.
CREATE OR REPLACE FUNCTION card_replace(p_card_id bigint, p_reason text, p_operator text,
                                        p_key text)
RETURNS TABLE (old_card_id bigint, new_card_id bigint, amount_moved bigint, old_version bigint,
               new_version bigint, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_card public.cards;
    v_done public.ledger;
    v_new_id bigint;
    v_out_entry bigint;
    v_in_entry bigint;
BEGIN
    PERFORM public.check_idempotency_key(p_key);
    v_card := public.lock_card(p_card_id);
    -- the key is carried by the old card's outgoing entry
    v_done := public.movement_by_key(p_card_id, p_key);
    IF v_done.entry_id IS NOT NULL THEN
        IF v_done.kind <> 'transfer' OR v_done.reason IS DISTINCT FROM p_reason THEN
            PERFORM public.key_conflict(p_key);
        END IF;
        RETURN QUERY SELECT p_card_id, v_done.counterpart_card_id, -v_done.amount, NULL::bigint,
                            NULL::bigint, true;
        RETURN;
    END IF;
    IF v_card.replaced_by IS NOT NULL THEN
        RAISE EXCEPTION 'card % was already replaced by card %', p_card_id, v_card.replaced_by
            USING ERRCODE = 'RC004';
    END IF;
    IF v_card.user_id IS NULL THEN
        RAISE EXCEPTION 'card % is anonymous: only a personalised card can be replaced', p_card_id
            USING ERRCODE = 'RC004';
    END IF;
    IF v_card.status NOT IN ('blocked', 'lost') THEN
        RAISE EXCEPTION 'card % is %: block it or report it lost before replacing it',
            p_card_id, v_card.status USING ERRCODE = 'RC004';
    END IF;
    v_new_id := nextval('public.card_id_seq');
    -- the benefit trips left move with the balance
    INSERT INTO public.cards (card_id, user_id, status, balance, version, issued_at, replaces,
                              last_movement_at, benefit_trips, benefit_month, benefit_criterion)
    VALUES (v_new_id, v_card.user_id, 'active', v_card.balance, 1, now(), p_card_id, now(),
            v_card.benefit_trips, v_card.benefit_month, v_card.benefit_criterion);
    v_out_entry := nextval(pg_get_serial_sequence('public.ledger', 'entry_id'));
    v_in_entry := nextval(pg_get_serial_sequence('public.ledger', 'entry_id'));
    INSERT INTO public.ledger (card_id, entry_id, kind, amount, created_at, balance_after,
                               counterpart_card_id, counterpart_entry_id, reason,
                               idempotency_key, trips, trips_month)
    VALUES (p_card_id, v_out_entry, 'transfer', -v_card.balance, now(), 0, v_new_id, v_in_entry,
            p_reason, p_key, -nullif(v_card.benefit_trips, 0),
            CASE WHEN v_card.benefit_trips > 0 THEN v_card.benefit_month END),
           (v_new_id, v_in_entry, 'transfer', v_card.balance, now(), v_card.balance, p_card_id,
            v_out_entry, p_reason, NULL, nullif(v_card.benefit_trips, 0),
            CASE WHEN v_card.benefit_trips > 0 THEN v_card.benefit_month END);
    UPDATE public.cards c
    SET balance = 0, version = c.version + 1, replaced_by = v_new_id, last_movement_at = now(),
        benefit_trips = CASE WHEN c.benefit_trips IS NOT NULL THEN 0 END
    WHERE c.card_id = p_card_id;
    PERFORM public.audit(p_card_id, p_operator, 'replace', p_reason,
                         jsonb_build_object('new_card_id', v_new_id, 'amount', v_card.balance));
    -- the new card's own history starts with its issue, like a card from `cards issue`
    PERFORM public.audit(v_new_id, p_operator, 'issue', p_reason,
                         jsonb_build_object('user_id', v_card.user_id, 'replaces', p_card_id,
                                            'amount', v_card.balance));
    RETURN QUERY SELECT p_card_id, v_new_id, v_card.balance, v_card.version + 1, 1::bigint, false;
END $$;

-- Reverse a recharge: a correcting entry of -amount referencing the recharge's entry, at
-- most once, only while the balance covers it.
CREATE OR REPLACE FUNCTION recharge_reverse(p_card_id bigint, p_recharge_id bigint,
                                            p_reason text, p_operator text, p_key text)
RETURNS TABLE (card_id bigint, recharge_id bigint, reversal_id bigint, amount bigint,
               balance bigint, version bigint, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_card public.cards;
    v_done public.ledger;
    v_entry public.ledger;
    v_balance bigint;
    v_reversal bigint;
BEGIN
    PERFORM public.check_idempotency_key(p_key);
    v_card := public.lock_card(p_card_id);
    v_done := public.movement_by_key(p_card_id, p_key);
    IF v_done.entry_id IS NOT NULL THEN
        IF v_done.kind <> 'correction' OR v_done.corrects_entry_id <> p_recharge_id
           OR v_done.reason IS DISTINCT FROM p_reason THEN
            PERFORM public.key_conflict(p_key);
        END IF;
        RETURN QUERY SELECT p_card_id, p_recharge_id, v_done.entry_id, -v_done.amount,
                            v_done.balance_after, NULL::bigint, true;
        RETURN;
    END IF;
    SELECT * INTO v_entry FROM public.ledger l
    WHERE l.card_id = p_card_id AND l.entry_id = p_recharge_id AND l.kind = 'recharge';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'recharge % of card % not found', p_recharge_id, p_card_id
            USING ERRCODE = 'RC003';
    END IF;
    IF EXISTS (SELECT 1 FROM public.ledger l
               WHERE l.card_id = p_card_id AND l.corrects_entry_id = v_entry.entry_id) THEN
        RAISE EXCEPTION 'recharge % was already reversed', p_recharge_id USING ERRCODE = 'RC004';
    END IF;
    v_balance := v_card.balance - v_entry.amount;
    IF v_balance < 0 THEN
        RAISE EXCEPTION 'reversing recharge % (%) would leave card % at %: its balance no longer '
                        'covers it', p_recharge_id, v_entry.amount, p_card_id, v_balance
            USING ERRCODE = 'RC004';
    END IF;
    v_reversal := nextval(pg_get_serial_sequence('public.ledger', 'entry_id'));
    -- the reversal carries the recharge's point: revenue by point is net of it
    INSERT INTO public.ledger (card_id, entry_id, kind, amount, corrects_entry_id, created_at,
                               balance_after, point_id, reason, idempotency_key)
    VALUES (p_card_id, v_reversal, 'correction', -v_entry.amount, v_entry.entry_id, now(),
            v_balance, v_entry.point_id, p_reason, p_key);
    UPDATE public.cards c SET balance = v_balance, version = c.version + 1, last_movement_at = now()
    WHERE c.card_id = p_card_id;
    PERFORM public.audit(p_card_id, p_operator, 'reverse', p_reason,
                         jsonb_build_object('recharge_id', p_recharge_id, 'amount', v_entry.amount,
                                            'reversal_id', v_reversal));
    RETURN QUERY SELECT p_card_id, p_recharge_id, v_reversal, v_entry.amount, v_balance,
                        v_card.version + 1, false;
END $$;

-- benefit_trips: the benefit trips left this month (0 when the card holds none of this
-- month's); benefit_expires: the last day they can be used.
DROP FUNCTION IF EXISTS card_show(bigint, integer);  -- (benefit trips)
CREATE OR REPLACE FUNCTION card_show(p_card_id bigint, p_movements integer)
RETURNS TABLE (card_id bigint, user_id bigint, status text, balance bigint, version bigint,
               issued_at timestamptz, last_movement_at timestamptz, replaced_by bigint,
               replaces bigint, benefit_trips integer, benefit_expires date, movements jsonb)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM public.require_card(p_card_id);
    RETURN QUERY
        SELECT c.card_id, c.user_id, c.status, c.balance, c.version, c.issued_at,
               c.last_movement_at, c.replaced_by, c.replaces,
               CASE WHEN c.benefit_month = date_trunc('month', now())::date
                    THEN c.benefit_trips::integer ELSE 0 END,
               CASE WHEN c.benefit_month = date_trunc('month', now())::date AND c.benefit_trips > 0
                    THEN (c.benefit_month + interval '1 month' - interval '1 day')::date END,
               coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                            'entry_id', l.entry_id, 'kind', l.kind, 'amount', l.amount,
                            'balance_after', l.balance_after, 'created_at', l.created_at,
                            'trips', l.trips)) ORDER BY l.entry_id DESC)
                         FROM (SELECT * FROM public.ledger l WHERE l.card_id = p_card_id
                               ORDER BY l.entry_id DESC LIMIT p_movements) l), '[]'::jsonb)
        FROM public.cards c WHERE c.card_id = p_card_id;
END $$;

CREATE OR REPLACE FUNCTION cards_list(p_status text, p_user_id bigint, p_limit integer,
                                      p_after bigint)
RETURNS TABLE (card_id bigint, user_id bigint, status text, balance bigint, issued_at timestamptz,
               last_movement_at timestamptz, replaced_by bigint)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT c.card_id, c.user_id, c.status, c.balance, c.issued_at, c.last_movement_at,
               c.replaced_by
        FROM public.cards c
        WHERE (p_status IS NULL OR c.status = p_status)
          AND (p_user_id IS NULL OR c.user_id = p_user_id)
          AND c.card_id > coalesce(p_after, 0)
        ORDER BY c.card_id LIMIT p_limit;
END $$;

-- Ledger entries in order with their running balance; `reference` names what each is.
CREATE OR REPLACE FUNCTION card_statement(p_card_id bigint, p_from date, p_to date)
RETURNS TABLE (entry_id bigint, kind text, amount bigint, balance_after bigint,
               created_at timestamptz, reference text)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM public.require_card(p_card_id);
    RETURN QUERY
        SELECT l.entry_id, l.kind, l.amount, l.balance_after, l.created_at,
               CASE l.kind WHEN 'recharge' THEN 'recharge ' || l.entry_id
                           WHEN 'fare' THEN 'trip ' || l.entry_id
                           WHEN 'correction' THEN 'reverses entry ' || l.corrects_entry_id
                           ELSE CASE WHEN l.amount < 0 THEN 'to card ' ELSE 'from card ' END
                                || l.counterpart_card_id END
        FROM public.ledger l
        WHERE l.card_id = p_card_id
          AND (p_from IS NULL OR l.created_at >= p_from::timestamptz)
          AND (p_to IS NULL OR l.created_at < (p_to + 1)::timestamptz)
        ORDER BY l.entry_id;
END $$;

CREATE OR REPLACE FUNCTION fares_list(p_at timestamptz)
RETURNS TABLE (code text, amount bigint, valid_from timestamptz, valid_to timestamptz)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT f.code, f.amount, f.valid_from, f.valid_to FROM public.fares f
        WHERE p_at IS NULL OR (f.valid_from <= p_at AND (f.valid_to IS NULL OR p_at < f.valid_to))
        ORDER BY f.code, f.valid_from;
END $$;

-- A new period for a fare from p_from on. The open period before it ends at p_from, unless
-- a trip already used it at or after p_from (that would rewrite charged history).
-- A new validity period of `p_subject` (a fare, the transfer window) from `p_from` may only
-- follow the last one: start after it, and where the last one already ends, start then.
CREATE OR REPLACE FUNCTION check_period_follows(p_subject text, p_last_from timestamptz,
                                                p_last_to timestamptz, p_from timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_from <= p_last_from THEN
        RAISE EXCEPTION '% already has a period from %: a new period must start after it',
            p_subject, p_last_from USING ERRCODE = 'RC004';
    END IF;
    IF p_last_to IS NOT NULL AND p_last_to <> p_from THEN
        RAISE EXCEPTION '%''s last period ends at %: a new period must start then',
            p_subject, p_last_to USING ERRCODE = 'RC004';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION fare_set(p_code text, p_amount bigint, p_from timestamptz,
                                    p_operator text, p_key text)
RETURNS TABLE (code text, amount bigint, valid_from timestamptz, valid_to timestamptz,
               replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object('code', p_code, 'amount', p_amount, 'from', p_from);
    v_done jsonb := public.claimed_admin_key(p_key, 'fare', v_request);
    v_open public.fares;
BEGIN
    IF v_done IS NOT NULL THEN
        RETURN QUERY SELECT p_code, p_amount, p_from, (v_done ->> 'valid_to')::timestamptz, true;
        RETURN;
    END IF;
    IF p_amount IS NULL OR p_amount < 0 THEN
        RAISE EXCEPTION 'a fare is a whole number of pesos, 0 or more' USING ERRCODE = 'RC002';
    END IF;
    LOCK TABLE public.fares IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO v_open FROM public.fares f
    WHERE f.code = p_code ORDER BY f.valid_from DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'fare % not found (fares list shows the codes)', p_code
            USING ERRCODE = 'RC003';
    END IF;
    PERFORM public.check_period_follows('fare ' || p_code, v_open.valid_from, v_open.valid_to,
                                        p_from);
    IF EXISTS (SELECT 1 FROM public.trips t
               WHERE t.fare_id = v_open.fare_id AND t.boarding_time >= p_from) THEN
        RAISE EXCEPTION 'trips from % on were already charged % for fare %: that period cannot '
                        'be rewritten', p_from, v_open.amount, p_code USING ERRCODE = 'RC004';
    END IF;
    UPDATE public.fares f SET valid_to = p_from WHERE f.fare_id = v_open.fare_id;
    INSERT INTO public.fares (code, fare_type, amount, valid_from)
    VALUES (p_code, v_open.fare_type, p_amount, p_from);
    PERFORM public.audit(0, p_operator, 'fare', NULL, v_request);
    INSERT INTO public.admin_keys (idempotency_key, operation, request, result)
    VALUES (p_key, 'fare', v_request, jsonb_build_object('valid_to', NULL));
    RETURN QUERY SELECT p_code, p_amount, p_from, NULL::timestamptz, false;
END $$;

DROP FUNCTION IF EXISTS limits_set(bigint, bigint, bigint, bigint, text, text);  -- (tap age)
DROP FUNCTION IF EXISTS limits_show();  -- (max_tap_age_days)
CREATE OR REPLACE FUNCTION limits_show()
RETURNS TABLE (min_recharge bigint, max_recharge bigint, max_balance bigint,
               credit_allowance bigint, transfer_window_minutes integer, max_transfers smallint,
               max_future_minutes integer, max_tap_age_days integer)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
        SELECT l.min_recharge, l.max_recharge, l.max_balance, l.credit_allowance,
               w.window_minutes, w.max_transfers, l.max_future_minutes, l.max_tap_age_days
        FROM public.limits l
        LEFT JOIN public.transfer_windows w
               ON w.valid_from <= now() AND (w.valid_to IS NULL OR now() < w.valid_to);
END $$;

-- (a key's request names max_tap_age_days only when it is given, so keys of limit changes
-- made before it existed still replay)
CREATE OR REPLACE FUNCTION limits_set(p_min bigint, p_max bigint, p_max_balance bigint, p_credit bigint,
                           p_max_tap_age_days integer, p_operator text, p_key text)
RETURNS TABLE (min_recharge bigint, max_recharge bigint, max_balance bigint,
               credit_allowance bigint, transfer_window_minutes integer, max_transfers smallint,
               max_future_minutes integer, max_tap_age_days integer, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object('min_recharge', p_min, 'max_recharge', p_max,
                                          'max_balance', p_max_balance, 'credit_allowance', p_credit)
        || CASE WHEN p_max_tap_age_days IS NOT NULL
                THEN jsonb_build_object('max_tap_age_days', p_max_tap_age_days)
                ELSE '{}'::jsonb END;
    v_done jsonb := public.claimed_admin_key(p_key, 'limits', v_request);
    v_before public.limits;
BEGIN
    IF v_done IS NULL THEN
        SELECT * INTO v_before FROM public.limits FOR UPDATE;
        BEGIN
            UPDATE public.limits l
            SET min_recharge = coalesce(p_min, l.min_recharge),
                max_recharge = coalesce(p_max, l.max_recharge),
                max_balance = coalesce(p_max_balance, l.max_balance),
                credit_allowance = coalesce(p_credit, l.credit_allowance),
                max_tap_age_days = coalesce(p_max_tap_age_days, l.max_tap_age_days);
        EXCEPTION WHEN check_violation THEN
            RAISE EXCEPTION 'inconsistent limits: need 0 < min-recharge <= max-recharge <= '
                            'max-balance, credit-allowance >= 0 and max-tap-age-days > 0'
                USING ERRCODE = 'RC002';
        END;
        PERFORM public.audit(0, p_operator, 'limits', NULL,
                             jsonb_build_object('before', to_jsonb(v_before), 'set', v_request));
        INSERT INTO public.admin_keys (idempotency_key, operation, request, result)
        VALUES (p_key, 'limits', v_request, '{}'::jsonb);
    END IF;
    RETURN QUERY SELECT s.*, v_done IS NOT NULL FROM public.limits_show() s;
END $$;

-- The audit trail. Without p_after: the newest p_limit rows (by time), newest first. With
-- p_after: the rows after that audit id up to p_upto (an audit_horizon), oldest first, so the
-- last audit_id shown is the cursor of the next page. db_user is NULL on rows written before
-- migration 0017 (unknown).
CREATE OR REPLACE FUNCTION audit_list(p_card_id bigint, p_limit integer, p_after bigint,
                                      p_upto bigint)
RETURNS TABLE (audit_id bigint, at timestamptz, card_id bigint, operator text, db_user text,
               action text, reason text, details jsonb)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_after IS NULL THEN
        RETURN QUERY
            SELECT a.audit_id, a.at, nullif(a.card_id, 0), a.operator, a.db_user, a.action,
                   a.reason, a.details
            FROM public.audit_log a
            WHERE p_card_id IS NULL OR a.card_id = p_card_id
            ORDER BY a.at DESC, a.audit_id DESC LIMIT p_limit;
    ELSE
        RETURN QUERY
            SELECT a.audit_id, a.at, nullif(a.card_id, 0), a.operator, a.db_user, a.action,
                   a.reason, a.details
            FROM public.audit_log a
            WHERE a.audit_id > p_after AND a.audit_id <= p_upto
              AND (p_card_id IS NULL OR a.card_id = p_card_id)
            ORDER BY a.audit_id LIMIT p_limit;
    END IF;
END $$;

-- The highest audit id H >= p_after such that every audit row with an id in (p_after, H]
-- that will ever commit has committed: a reader that shows those rows and moves its cursor
-- to H skips nothing.
--
-- Audit ids are drawn in order, but transactions commit in any order: a transaction may
-- draw id 10, another draw 11 and commit first. A cursor that moved past 11 would skip 10.
-- So: `high` is the last id drawn. If every id in (p_after, high] is visible, nothing can
-- come later. Otherwise an id is in flight (or was rolled back, or burnt by a crash). Every
-- transaction that drew an id <= high took its transaction id before (the statement
-- trigger of migration 0017), hence an id below the one this call takes now; once the
-- oldest running transaction is no older than this call's own (snapshot xmin >= our id),
-- all of them have ended and (p_after, high] is final. That wait is up to 2 seconds; past
-- it the answer is the id before the first gap, and a later call tries again. The wait is
-- for every older transaction of the cluster, not only the writers of audit rows: a long
-- transaction anywhere holds back what comes after a gap (never what comes before it).
-- Needs the primary (it takes a transaction id).
CREATE OR REPLACE FUNCTION audit_horizon(p_after bigint)
RETURNS bigint
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_high bigint := pg_sequence_last_value(pg_get_serial_sequence('public.audit_log',
                                                                   'audit_id')::regclass);
    v_gap bigint;
    v_xid xid8;
    v_until timestamptz;
BEGIN
    IF v_high IS NULL OR v_high <= p_after THEN
        RETURN p_after;
    END IF;
    SELECT min(s.previous) + 1 INTO v_gap
    FROM (SELECT v.audit_id, lag(v.audit_id, 1, p_after) OVER (ORDER BY v.audit_id) AS previous
          FROM (SELECT a.audit_id FROM public.audit_log a
                WHERE a.audit_id > p_after AND a.audit_id <= v_high
                UNION ALL SELECT v_high + 1) v) s
    WHERE s.audit_id > s.previous + 1;
    IF v_gap IS NULL THEN
        RETURN v_high;
    END IF;
    v_xid := pg_current_xact_id();
    v_until := clock_timestamp() + interval '2 seconds';
    LOOP
        IF pg_snapshot_xmin(pg_current_snapshot()) >= v_xid THEN
            RETURN v_high;
        END IF;
        EXIT WHEN clock_timestamp() >= v_until;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN v_gap - 1;
END $$;

-- Where `audit list --follow` without a cursor starts: before the newest p_limit rows (by
-- audit id) of the card, or of the whole trail.
CREATE OR REPLACE FUNCTION audit_tail(p_card_id bigint, p_limit integer)
RETURNS bigint
LANGUAGE sql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(min(t.audit_id) - 1, 0)
    FROM (SELECT a.audit_id FROM public.audit_log a
          WHERE p_card_id IS NULL OR a.card_id = p_card_id
          ORDER BY a.audit_id DESC LIMIT p_limit) t
$$;
