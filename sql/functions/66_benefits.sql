-- Monthly free trips (benefits grant): the month's trips loaded onto each eligible user's
-- active personalised card, as ledger rows (migration 0023). Taps spend them (tap_core).

-- The grant of the current month, set-based. First every card still holding trips of an
-- earlier month lapses them (a benefit_lapse row each: they do not accumulate); then each
-- user benefit_allocations() finds eligible gets the month's trips on their newest active
-- personalised card (a benefit_grant row, key 'benefits-YYYY-MM'). Idempotent per user and
-- month: a user who already has the month's grant on any of their cards (a replacement
-- carries the trips on) is a replay. Eligible users without such a card are skipped. One
-- row per card or user: outcome lapsed | granted | replayed | skipped.
CREATE OR REPLACE FUNCTION benefits_grant(p_month date)
RETURNS TABLE (outcome text, user_id bigint, card_id bigint, criterion text, trips integer)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp SET jit = off AS $$
#variable_conflict use_column
DECLARE
    v_month date := date_trunc('month', p_month)::date;
    v_key text := 'benefits-' || to_char(date_trunc('month', p_month), 'YYYY-MM');
BEGIN
    IF v_month IS DISTINCT FROM date_trunc('month', now())::date THEN
        RAISE EXCEPTION 'a grant loads the current month''s trips (%): % is another month',
            to_char(now(), 'YYYY-MM'), to_char(p_month, 'YYYY-MM') USING ERRCODE = 'RC004';
    END IF;
    PERFORM pg_advisory_xact_lock(7325003);  -- one grant at a time
    DROP TABLE IF EXISTS pg_temp.benefit_targets;
    CREATE TEMP TABLE benefit_targets ON COMMIT DROP AS
        SELECT DISTINCT ON (a.user_id) a.user_id, a.criterion, a.trips, c.card_id,
               EXISTS (SELECT 1 FROM public.cards o
                       JOIN public.ledger l ON l.card_id = o.card_id AND l.idempotency_key = v_key
                       WHERE o.user_id = a.user_id) AS done
        FROM public.benefit_allocations(v_month) a
        LEFT JOIN public.cards c ON c.user_id = a.user_id AND c.status = 'active'
                                AND c.replaced_by IS NULL
        ORDER BY a.user_id, c.issued_at DESC NULLS LAST, c.card_id DESC;
    -- every card that changes, locked in id order (taps spend trips under the same lock)
    PERFORM 1 FROM public.cards c
    WHERE (c.benefit_month < v_month AND c.benefit_trips > 0)
       OR c.card_id IN (SELECT t.card_id FROM benefit_targets t WHERE NOT t.done)
    ORDER BY c.card_id FOR UPDATE;

    RETURN QUERY
    WITH lapsing AS (
        SELECT c.card_id, c.user_id, c.balance, c.benefit_trips, c.benefit_month,
               c.benefit_criterion
        FROM public.cards c WHERE c.benefit_month < v_month AND c.benefit_trips > 0
    ), lapsed AS (
        INSERT INTO public.ledger (card_id, kind, amount, balance_after, created_at, trips,
                                   trips_month, idempotency_key)
        SELECT l.card_id, 'benefit_lapse', 0, l.balance, now(), -l.benefit_trips, l.benefit_month,
               'benefits-lapse-' || to_char(l.benefit_month, 'YYYY-MM')
        FROM lapsing l
    ), cleared AS (
        UPDATE public.cards c SET benefit_trips = 0 FROM lapsing l WHERE c.card_id = l.card_id
    )
    SELECT 'lapsed', l.user_id, l.card_id, l.benefit_criterion, -l.benefit_trips::integer
    FROM lapsing l;

    RETURN QUERY
    WITH granting AS (
        SELECT t.user_id, t.criterion, t.trips, c.card_id, c.balance
        FROM benefit_targets t JOIN public.cards c ON c.card_id = t.card_id
        WHERE NOT t.done
    ), granted AS (
        INSERT INTO public.ledger (card_id, kind, amount, balance_after, created_at, trips,
                                   trips_month, idempotency_key, benefit)
        SELECT g.card_id, 'benefit_grant', 0, g.balance, now(), g.trips, v_month, v_key,
               g.criterion
        FROM granting g
    ), loaded AS (
        UPDATE public.cards c
        SET benefit_trips = g.trips, benefit_month = v_month, benefit_criterion = g.criterion
        FROM granting g WHERE c.card_id = g.card_id
    )
    SELECT 'granted', g.user_id, g.card_id, g.criterion, g.trips::integer FROM granting g
    UNION ALL
    SELECT CASE WHEN t.done THEN 'replayed' ELSE 'skipped' END, t.user_id,
           CASE WHEN t.done THEN t.card_id END, t.criterion, t.trips::integer
    FROM benefit_targets t WHERE t.done OR t.card_id IS NULL;
END $$;
