-- The ledger invariants. One row per violation; no rows means every invariant holds.
CREATE OR REPLACE FUNCTION verify_ledger()
RETURNS TABLE (invariant integer, check_name text, card_id bigint, expected bigint,
               actual bigint, detail text)
LANGUAGE sql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- (invariant 10: how far in the future anything may lie, the clock skew boarding times get)
    WITH horizon AS (SELECT now() + make_interval(mins => lim.max_future_minutes) AS horizon
                     FROM public.limits lim)
    -- 1. balance = sum of the card's ledger entries
    SELECT 1, 'balance equals ledger sum', c.card_id, coalesce(l.total, 0), c.balance, NULL
    FROM public.cards c
    LEFT JOIN (SELECT l.card_id, sum(l.amount) AS total FROM public.ledger l GROUP BY l.card_id) l
           ON l.card_id = c.card_id
    WHERE c.balance <> coalesce(l.total, 0)
    UNION ALL
    -- 2. every recharge and trip has exactly one ledger entry with its amount
    SELECT 2, 'recharge has one matching ledger entry', r.card_id, r.amount,
           coalesce(sum(l.amount), 0), 'recharge ' || r.recharge_id || ', entries ' || count(l.*)
    FROM public.recharges r
    LEFT JOIN public.ledger l ON l.card_id = r.card_id AND l.recharge_id = r.recharge_id
    GROUP BY r.card_id, r.recharge_id, r.amount
    HAVING count(l.*) <> 1 OR coalesce(sum(l.amount), 0) <> r.amount
    UNION ALL
    SELECT 2, 'trip has one matching ledger entry', t.card_id, -t.fare_charged,
           coalesce(sum(l.amount), 0), 'trip ' || t.trip_id || ', entries ' || count(l.*)
    FROM public.trips t
    LEFT JOIN public.ledger l ON l.card_id = t.card_id AND l.trip_id = t.trip_id
    GROUP BY t.card_id, t.trip_id, t.fare_charged
    HAVING count(l.*) <> 1 OR coalesce(sum(l.amount), 0) <> -t.fare_charged
    UNION ALL
    -- (one anti-join per kind: a single NOT EXISTS … OR NOT EXISTS would probe per entry)
    SELECT 2, 'ledger entry belongs to one operation', l.card_id, 1, 0,
           'entry ' || l.entry_id || ' (' || l.kind || ')'
    FROM public.ledger l
    WHERE l.kind = 'recharge' AND NOT EXISTS (
              SELECT 1 FROM public.recharges r
              WHERE r.card_id = l.card_id AND r.recharge_id = l.recharge_id)
    UNION ALL
    SELECT 2, 'ledger entry belongs to one operation', l.card_id, 1, 0,
           'entry ' || l.entry_id || ' (' || l.kind || ')'
    FROM public.ledger l
    WHERE l.kind = 'fare' AND NOT EXISTS (
              SELECT 1 FROM public.trips t WHERE t.card_id = l.card_id AND t.trip_id = l.trip_id)
    UNION ALL
    -- (every entry's card exists: foreign keys hold it, directly for entries that name no
    -- operation, through the recharge, trip or corrected entry for the others)
    SELECT 2, 'ledger entry belongs to an existing card', l.card_id, 1, 0,
           'entry ' || l.entry_id || ' (' || l.kind || ')'
    FROM public.ledger l
    WHERE NOT EXISTS (SELECT 1 FROM public.cards c WHERE c.card_id = l.card_id)
    UNION ALL
    -- 7. a reversal reverses one recharge entry of its card, by its whole amount (at most
    --    once: ledger_corrects_once)
    SELECT 7, 'reversal reverses one recharge', l.card_id, -r.amount, l.amount,
           'entry ' || l.entry_id || ' corrects entry ' || l.corrects_entry_id
    FROM public.ledger l
    LEFT JOIN public.ledger r ON r.card_id = l.card_id AND r.entry_id = l.corrects_entry_id
    WHERE l.kind = 'correction' AND (r.kind IS DISTINCT FROM 'recharge' OR l.amount <> -r.amount)
    UNION ALL
    -- 8. replacement entries come in linked pairs that sum to zero; a replaced card holds 0
    SELECT 8, 'linked entries sum to zero', l.card_id, -l.amount, o.amount,
           'entry ' || l.entry_id || ' and card ' || l.counterpart_card_id || ' entry '
             || l.counterpart_entry_id
    FROM public.ledger l
    LEFT JOIN public.ledger o ON o.card_id = l.counterpart_card_id
                             AND o.entry_id = l.counterpart_entry_id
    WHERE l.kind = 'transfer' AND (o.kind IS DISTINCT FROM 'transfer' OR o.amount <> -l.amount
                                   OR o.counterpart_entry_id <> l.entry_id)
    UNION ALL
    SELECT 8, 'replaced card holds 0', c.card_id, 0, c.balance, 'replaced by ' || c.replaced_by
    FROM public.cards c
    LEFT JOIN public.cards n ON n.card_id = c.replaced_by
    WHERE c.replaced_by IS NOT NULL AND (c.balance <> 0 OR n.replaces IS DISTINCT FROM c.card_id)
    UNION ALL
    -- 9. every status change has its audit row
    SELECT 9, 'status change has its audit row', s.card_id, 1, 0,
           s.old_status || ' -> ' || s.new_status || ' at ' || s.changed_at
    FROM public.card_status_changes s
    WHERE s.operator IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM public.audit_log a
        WHERE a.card_id = s.card_id AND a.action = 'status' AND a.at = s.changed_at
          AND a.details ->> 'to' = s.new_status)
    UNION ALL
    -- 10. time coherence: an owner registers before their card is issued, a card is issued
    --     before any of its movements, and nothing lies in the future (beyond the boarding
    --     clock skew, limits.max_future_minutes). One pass over each movement table, probing
    --     an in-memory hash of the cards; one row per card and kind of movement.
    SELECT 10, CASE WHEN m.at < c.issued_at THEN m.kind || ' before its card was issued'
                    ELSE m.kind || ' in the future' END,
           m.card_id, NULL, count(*),
           count(*) || ' ' || m.kind || '(s), the first at ' || min(m.at) || ', the last at '
             || max(m.at) || '; card issued at ' || c.issued_at
    FROM (SELECT t.card_id, 'trip' AS kind, t.boarding_time AS at FROM public.trips t
          UNION ALL
          SELECT r.card_id, 'recharge', r.recharged_at FROM public.recharges r
          UNION ALL
          SELECT l.card_id, 'ledger entry', l.created_at FROM public.ledger l
          UNION ALL
          SELECT s.card_id, 'status change', s.changed_at FROM public.card_status_changes s) m
    JOIN public.cards c ON c.card_id = m.card_id
    CROSS JOIN horizon h
    WHERE m.at < c.issued_at OR m.at > h.horizon
    GROUP BY m.card_id, m.kind, c.issued_at, m.at < c.issued_at
    UNION ALL
    SELECT 10, CASE WHEN c.issued_at < u.registered_at THEN 'card issued before its owner registered'
                    ELSE 'card issued in the future' END,
           c.card_id, NULL, NULL,
           'issued at ' || c.issued_at || coalesce(', user ' || u.user_id || ' registered at '
                                                   || u.registered_at, '')
    FROM public.cards c
    LEFT JOIN public.users u ON u.user_id = c.user_id
    CROSS JOIN horizon h
    WHERE c.issued_at < u.registered_at OR c.issued_at > h.horizon
    UNION ALL
    SELECT 10, 'user registered in the future', NULL, NULL, NULL,
           'user ' || u.user_id || ' registered at ' || u.registered_at
    FROM public.users u
    WHERE u.registered_at > (SELECT h.horizon FROM horizon h)
    UNION ALL
    -- 3. balances within [-credit allowance (0 for an anonymous card), maximum balance]
    SELECT 3, 'balance within limits', c.card_id,
           CASE WHEN c.balance > lim.max_balance THEN lim.max_balance
                WHEN c.user_id IS NULL THEN 0 ELSE -lim.credit_allowance END,
           c.balance, NULL
    FROM public.cards c CROSS JOIN public.limits lim
    WHERE c.balance > lim.max_balance
       OR c.balance < CASE WHEN c.user_id IS NULL THEN 0 ELSE -lim.credit_allowance END
    UNION ALL
    -- 4. an idempotency key maps to exactly one operation, and an operation to one key
    SELECT 4, 'idempotency key names an existing operation', k.card_id, 1, 0,
           'key ' || k.idempotency_key
    FROM public.idempotency_keys k
    WHERE (k.operation = 'recharge' AND NOT EXISTS (
              SELECT 1 FROM public.recharges r
              WHERE r.card_id = k.card_id AND r.recharge_id = k.recharge_id))
       OR (k.operation = 'trip' AND NOT EXISTS (
              SELECT 1 FROM public.trips t WHERE t.card_id = k.card_id AND t.trip_id = k.trip_id))
       OR (k.operation IN ('replace', 'reverse') AND NOT EXISTS (
              SELECT 1 FROM public.ledger l WHERE l.card_id = k.card_id AND l.entry_id = k.entry_id))
    UNION ALL
    SELECT 4, 'idempotency key belongs to an existing card', k.card_id, 1, 0,
           'key ' || k.idempotency_key
    FROM public.idempotency_keys k
    WHERE NOT EXISTS (SELECT 1 FROM public.cards c WHERE c.card_id = k.card_id)
    UNION ALL
    -- (a status change is its own operation: it has no other id)
    SELECT 4, 'operation has at most one idempotency key', k.card_id, 1, count(*),
           k.operation || ' ' || coalesce(k.recharge_id, k.trip_id, k.entry_id)
    FROM public.idempotency_keys k
    WHERE k.operation <> 'status'
    GROUP BY k.card_id, k.operation, coalesce(k.recharge_id, k.trip_id, k.entry_id)
    HAVING count(*) > 1
    UNION ALL
    -- 5. totals: sum of balances = recharges - fares + corrections (+ transfers, which sum to 0)
    SELECT 5, 'total balances equal recharges minus fares plus corrections', NULL,
           (SELECT coalesce(sum(r.amount), 0) FROM public.recharges r)
             - (SELECT coalesce(sum(t.fare_charged), 0) FROM public.trips t)
             + (SELECT coalesce(sum(l.amount), 0) FROM public.ledger l
                WHERE l.kind IN ('correction', 'transfer')),
           (SELECT coalesce(sum(c.balance), 0) FROM public.cards c), NULL
    WHERE (SELECT coalesce(sum(r.amount), 0) FROM public.recharges r)
            - (SELECT coalesce(sum(t.fare_charged), 0) FROM public.trips t)
            + (SELECT coalesce(sum(l.amount), 0) FROM public.ledger l
               WHERE l.kind IN ('correction', 'transfer'))
          <> (SELECT coalesce(sum(c.balance), 0) FROM public.cards c)
    UNION ALL
    -- 6. derived tables (counts, rollups) equal a recomputation from the base tables
    SELECT 6, 'entity count equals recomputation', NULL, x.expected, x.actual, x.what
    FROM public.entity_counts e,
         LATERAL (VALUES ('users', (SELECT count(*) FROM public.users), e.users),
                         ('cards', (SELECT count(*) FROM public.cards), e.cards),
                         ('active cards', (SELECT count(*) FROM public.cards c
                                           WHERE c.status = 'active'), e.active_cards))
                 x (what, expected, actual)
    WHERE x.expected <> x.actual
    UNION ALL
    SELECT 6, 'rollup equals recomputation', NULL, NULL, NULL,
           v.day || ' ' || v.rollup || ': stored ' || coalesce(v.stored, 'nothing')
             || ', recomputed ' || coalesce(v.recomputed, 'nothing')
    FROM public.verify_rollups() v
$$;
