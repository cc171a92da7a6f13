-- The customer-service desk and the benefit rules: users show, find and update, personalising
-- an anonymous card, the allocation table and each user's monthly trips, the hotlist.
-- Errors: RC002 invalid input, RC003 not found, RC004 rejected by a rule, RC005 key reused.

-- A Sisbén IV group as stored: A, B, C1-C18 or D (case and blanks ignored); NULL for none
-- (NULL, '' or 'none'). Anything else is RC002.
CREATE OR REPLACE FUNCTION sisben_group(p_text text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_group text := upper(btrim(p_text));
BEGIN
    IF v_group IS NULL OR v_group IN ('', 'NONE') THEN
        RETURN NULL;
    END IF;
    IF v_group !~ '^(A|B|C([1-9]|1[0-8])|D)$' THEN
        RAISE EXCEPTION 'invalid Sisbén group %: use A, B, C1 to C18, D or none', p_text
            USING ERRCODE = 'RC002';
    END IF;
    RETURN v_group;
END $$;

-- The checks of a user's editable fields (NULL: not given).
CREATE OR REPLACE FUNCTION user_fields_check(p_name text, p_email text, p_birth_date date)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_name IS NOT NULL AND length(btrim(p_name)) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'name must be 1-200 characters' USING ERRCODE = 'RC002';
    END IF;
    IF p_email IS NOT NULL AND NOT public.email_is_valid(p_email) THEN
        RAISE EXCEPTION 'invalid email %: use name@domain, at most 254 characters', p_email
            USING ERRCODE = 'RC002';
    END IF;
    IF p_birth_date IS NOT NULL AND NOT p_birth_date BETWEEN '1900-01-01' AND current_date THEN
        RAISE EXCEPTION 'invalid birth date %: give a day from 1900-01-01 to today', p_birth_date
            USING ERRCODE = 'RC002';
    END IF;
END $$;

-- Each eligible user's trips for the month that starts on p_month (its first day): the
-- largest number among the rules met that are valid then (no row for a user who meets none).
-- Age is counted on the month's first day: a user who turns 62 during a month is an older
-- adult from the next month on, so the month's allocation is fixed when the month starts and
-- a grant gives the same answer whichever day it runs. A user without a birth date meets no
-- age criterion. Set-based, for a monthly grant over every user; the planner inlines it, so
-- `WHERE user_id = …` reads one user.
CREATE OR REPLACE FUNCTION benefit_allocations(p_month date)
RETURNS TABLE (user_id bigint, criterion text, trips smallint)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (u.user_id) u.user_id, r.criterion, r.trips
    FROM public.users u
    JOIN public.benefit_rules r
      ON coalesce(r.sisben_group, '-') = coalesce(u.sisben_group, '-')
     AND r.valid_from <= p_month AND (r.valid_to IS NULL OR p_month < r.valid_to)
     AND CASE r.criterion
             WHEN 'disability' THEN u.disability
             WHEN 'older_adult' THEN u.birth_date <= (p_month - make_interval(years => r.min_age))::date
             ELSE true END
    ORDER BY u.user_id, r.trips DESC, r.criterion
$$;

-- The allocation table, every validity period (or those valid in the month of p_month).
CREATE OR REPLACE FUNCTION benefit_rules_list(p_month date)
RETURNS TABLE (criterion text, sisben_group text, trips smallint, min_age smallint,
               valid_from date, valid_to date)
LANGUAGE sql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT r.criterion, coalesce(r.sisben_group, 'none'), r.trips, r.min_age, r.valid_from,
           r.valid_to
    FROM public.benefit_rules r
    WHERE p_month IS NULL
       OR (r.valid_from <= date_trunc('month', p_month)::date
           AND (r.valid_to IS NULL OR date_trunc('month', p_month)::date < r.valid_to))
    ORDER BY r.valid_from, array_position(ARRAY['disability', 'older_adult', 'poverty'], r.criterion),
             r.trips DESC, length(r.sisben_group), r.sisben_group
$$;

-- One user for the desk: who, eligibility, this month's entitlement, every card with its
-- status and balance. By id or by document (exactly one of them).
CREATE OR REPLACE FUNCTION user_show(p_user_id bigint, p_document text)
RETURNS TABLE (user_id bigint, document text, full_name text, email text,
               registered_at timestamptz, birth_date date, age integer, sisben_group text,
               disability boolean, benefit_month date, benefit_criterion text,
               benefit_trips_per_month integer, cards jsonb)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_user public.users;
    v_month date := date_trunc('month', now())::date;
BEGIN
    IF (p_user_id IS NULL) = (p_document IS NULL) THEN
        RAISE EXCEPTION 'give a user id or a document, not both' USING ERRCODE = 'RC002';
    END IF;
    SELECT * INTO v_user FROM public.users u
    WHERE u.user_id = p_user_id OR u.document = btrim(p_document);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % not found', coalesce(p_user_id::text, 'with document ' || p_document)
            USING ERRCODE = 'RC003';
    END IF;
    RETURN QUERY
        SELECT v_user.user_id, v_user.document, v_user.full_name, v_user.email,
               v_user.registered_at, v_user.birth_date,
               extract(year FROM age(current_date, v_user.birth_date))::integer,
               v_user.sisben_group, v_user.disability, v_month, a.criterion,
               coalesce(a.trips, 0)::integer,
               coalesce((SELECT jsonb_agg(jsonb_build_object(
                             'card_id', c.card_id, 'status', c.status, 'balance', c.balance,
                             'issued_at', c.issued_at, 'last_movement_at', c.last_movement_at,
                             'replaced_by', c.replaced_by) ORDER BY c.card_id)
                         FROM public.cards c WHERE c.user_id = v_user.user_id), '[]'::jsonb)
        FROM (SELECT 1) one
        LEFT JOIN public.benefit_allocations(v_month) a ON a.user_id = v_user.user_id;
END $$;

-- Users whose name holds every word of p_text (at most 10 words), accents and case ignored,
-- ordered by the name as searched (so "Íñigo" sorts with "Inigo" under any collation). Each
-- word is one condition on the trigram index (users_name_key_idx), which intersects them.
CREATE OR REPLACE FUNCTION users_find(p_text text, p_limit integer)
RETURNS TABLE (user_id bigint, document text, full_name text, email text,
               registered_at timestamptz, birth_date date, sisben_group text, disability boolean)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_patterns text[];
BEGIN
    SELECT array_agg('%' || regexp_replace(w, '([%_\\])', '\\\1', 'g') || '%')
    INTO v_patterns
    FROM regexp_split_to_table(public.fold_name(btrim(coalesce(p_text, ''))), '\s+') w
    WHERE w <> '';
    IF v_patterns IS NULL THEN
        RAISE EXCEPTION 'give a name (or part of one) to find' USING ERRCODE = 'RC002';
    END IF;
    IF cardinality(v_patterns) > 10 THEN
        RAISE EXCEPTION 'give at most 10 words to find' USING ERRCODE = 'RC002';
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT u.user_id, u.document, u.full_name, u.email, u.registered_at, u.birth_date, '
        'u.sisben_group, u.disability FROM public.users u WHERE %s '
        'ORDER BY u.name_key, u.full_name, u.user_id LIMIT $2',
        (SELECT string_agg(format('u.name_key LIKE $1[%s]', i), ' AND ')
         FROM generate_subscripts(v_patterns, 1) i))
    USING v_patterns, p_limit;
END $$;

-- Correct a user's email, name or eligibility (NULL: unchanged; p_sisben 'none' clears the
-- group). One audit row names each changed field's old and new value; idempotent by key.
CREATE OR REPLACE FUNCTION user_update(p_user_id bigint, p_email text, p_name text,
                                       p_birth_date date, p_sisben text, p_disability boolean,
                                       p_operator text, p_key text)
RETURNS TABLE (user_id bigint, document text, full_name text, email text, birth_date date,
               sisben_group text, disability boolean, changed text[], replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_sisben text := public.sisben_group(p_sisben);
    v_request jsonb := jsonb_build_object('user_id', p_user_id, 'email', p_email,
                                          'name', p_name, 'birth_date', p_birth_date,
                                          'sisben', p_sisben, 'disability', p_disability);
    v_done jsonb := public.claimed_admin_key(p_key, 'user_update', v_request);
    v_before public.users;
    v_after public.users;
    v_changed text[];
    v_old jsonb;
    v_new jsonb;
BEGIN
    IF v_done IS NULL THEN
        PERFORM public.user_fields_check(p_name, btrim(p_email), p_birth_date);
        SELECT * INTO v_before FROM public.users u WHERE u.user_id = p_user_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'user % not found', p_user_id USING ERRCODE = 'RC003';
        END IF;
        UPDATE public.users u
        SET email = coalesce(btrim(p_email), u.email),
            full_name = coalesce(btrim(p_name), u.full_name),
            birth_date = coalesce(p_birth_date, u.birth_date),
            sisben_group = CASE WHEN p_sisben IS NULL THEN u.sisben_group ELSE v_sisben END,
            disability = coalesce(p_disability, u.disability)
        WHERE u.user_id = p_user_id
        RETURNING * INTO v_after;
        v_old := to_jsonb(v_before) - 'name_key';
        v_new := to_jsonb(v_after) - 'name_key';
        SELECT coalesce(array_agg(k ORDER BY k), '{}') INTO v_changed
        FROM jsonb_object_keys(v_new) k WHERE v_new -> k IS DISTINCT FROM v_old -> k;
        IF cardinality(v_changed) > 0 THEN
            PERFORM public.audit(0, p_operator, 'user_update', NULL, jsonb_build_object(
                'user_id', p_user_id,
                'from', (SELECT jsonb_object_agg(k, v_old -> k) FROM unnest(v_changed) k),
                'to', (SELECT jsonb_object_agg(k, v_new -> k) FROM unnest(v_changed) k)));
        END IF;
        INSERT INTO public.admin_keys (idempotency_key, operation, request, result)
        VALUES (p_key, 'user_update', v_request, jsonb_build_object('changed', v_changed));
    END IF;
    RETURN QUERY
        SELECT u.user_id, u.document, u.full_name, u.email, u.birth_date, u.sisben_group,
               u.disability,
               coalesce(v_changed, ARRAY(SELECT jsonb_array_elements_text(v_done -> 'changed'))),
               v_done IS NOT NULL
        FROM public.users u WHERE u.user_id = p_user_id;
END $$;

-- An anonymous active card becomes the user's, keeping its balance and history (its ledger
-- is untouched); the version moves so that cached copies are replaced. Idempotent by key.
CREATE OR REPLACE FUNCTION card_personalise(p_card_id bigint, p_user_id bigint,
                                            p_operator text, p_key text)
RETURNS TABLE (card_id bigint, user_id bigint, status text, balance bigint,
               personalised_at timestamptz, version bigint, replayed boolean)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_request jsonb := jsonb_build_object('card_id', p_card_id, 'user_id', p_user_id);
    v_done jsonb := public.claimed_admin_key(p_key, 'personalise', v_request);
    v_card public.cards;
BEGIN
    IF v_done IS NOT NULL THEN
        RETURN QUERY SELECT c.card_id, c.user_id, c.status, c.balance, c.personalised_at,
                            NULL::bigint, true
                     FROM public.cards c WHERE c.card_id = p_card_id;
        RETURN;
    END IF;
    SELECT * INTO v_card FROM public.cards c WHERE c.card_id = p_card_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'card % not found', p_card_id USING ERRCODE = 'RC003';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.users u WHERE u.user_id = p_user_id) THEN
        RAISE EXCEPTION 'user % not found', p_user_id USING ERRCODE = 'RC003';
    END IF;
    IF v_card.user_id IS NOT NULL THEN
        RAISE EXCEPTION 'card % is already personalised (user %)', p_card_id, v_card.user_id
            USING ERRCODE = 'RC004';
    END IF;
    IF v_card.status <> 'active' OR v_card.replaced_by IS NOT NULL THEN
        RAISE EXCEPTION 'card % is %: only an active card can be personalised', p_card_id,
            CASE WHEN v_card.replaced_by IS NULL THEN v_card.status ELSE 'replaced' END
            USING ERRCODE = 'RC004';
    END IF;
    UPDATE public.cards c SET user_id = p_user_id, personalised_at = now(), version = c.version + 1
    WHERE c.card_id = p_card_id;
    PERFORM public.audit(p_card_id, p_operator, 'personalise', NULL,
                         jsonb_build_object('user_id', p_user_id, 'balance', v_card.balance));
    INSERT INTO public.admin_keys (idempotency_key, operation, request, result)
    VALUES (p_key, 'personalise', v_request, jsonb_build_object('card_id', p_card_id));
    RETURN QUERY SELECT p_card_id, p_user_id, v_card.status, v_card.balance, now(),
                        v_card.version + 1, false;
END $$;

-- A card as the hotlist lists it: a replaced card (blocked or lost too) says replaced; the
-- time is that of its latest status change or of its replacement, whichever is later.
CREATE OR REPLACE FUNCTION hotlist_entry(p_card public.cards)
RETURNS TABLE (card_id bigint, status text, changed_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT p_card.card_id,
           CASE WHEN p_card.replaced_by IS NOT NULL THEN 'replaced' ELSE p_card.status END,
           greatest((SELECT n.issued_at FROM public.cards n WHERE n.card_id = p_card.replaced_by),
                    coalesce((SELECT max(s.changed_at) FROM public.card_status_changes s
                              WHERE s.card_id = p_card.card_id), p_card.issued_at))
$$;

-- The cards validators must refuse: blocked, lost, replaced, oldest change first. With
-- p_since: every card whose status changed or that was replaced after p_since, with its
-- status now, so a delta also carries the cards that became usable again (an unblock: status
-- active), which a validator removes from its list. Two queries, each planned for its own
-- case: the full list reads the partial index of refused cards, a delta the status history's
-- index on changed_at and the partial index of replacements (cost: the changes after p_since).
CREATE OR REPLACE FUNCTION cards_hotlist(p_since timestamptz)
RETURNS TABLE (card_id bigint, status text, changed_at timestamptz)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_since IS NULL THEN
        RETURN QUERY
            SELECT h.card_id, h.status, h.changed_at
            FROM public.cards c, public.hotlist_entry(c) h
            WHERE c.status IN ('blocked', 'lost') OR c.replaced_by IS NOT NULL
            ORDER BY 3, 1;
    ELSE
        RETURN QUERY
            SELECT h.card_id, h.status, h.changed_at
            FROM public.cards c, public.hotlist_entry(c) h
            WHERE c.card_id IN (SELECT s.card_id FROM public.card_status_changes s
                                WHERE s.changed_at > p_since
                                UNION
                                SELECT n.replaces FROM public.cards n
                                WHERE n.replaces IS NOT NULL AND n.issued_at > p_since)
            ORDER BY 3, 1;
    END IF;
END $$;
