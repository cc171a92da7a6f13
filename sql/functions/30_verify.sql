-- The ledger invariants. One row per violation; no rows means every invariant holds.
CREATE OR REPLACE FUNCTION verify_ledger()
RETURNS TABLE (invariant integer, check_name text, card_id bigint, expected bigint,
               actual bigint, detail text)
LANGUAGE sql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    -- (invariant 10: how far in the future anything may lie, the clock skew boarding times get)
    WITH RECURSIVE horizon AS (
        SELECT now() + make_interval(mins => lim.max_future_minutes) AS horizon
        FROM public.limits lim
    ), origins AS (  -- (each card of a chain of replacements, and when the chain's first was issued)
        SELECT c.card_id, c.issued_at AS first_issued FROM public.cards c
        WHERE c.replaces IS NULL AND c.replaced_by IS NOT NULL
        UNION ALL
        SELECT n.card_id, o.first_issued FROM origins o JOIN public.cards n ON n.replaces = o.card_id
    )
    -- 1. balance = sum of the card's ledger entries
    SELECT 1, 'balance equals ledger sum', c.card_id, coalesce(l.total, 0), c.balance, NULL
    FROM public.cards c
    LEFT JOIN (SELECT l.card_id, sum(l.amount) AS total FROM public.ledger l GROUP BY l.card_id) l
           ON l.card_id = c.card_id
    WHERE c.balance <> coalesce(l.total, 0)
    UNION ALL
    -- 2. each movement is one row, its own entry (by construction); its balance_after chains
    --    to the card's previous entry: previous balance_after + amount
    SELECT 2, 'entry balance chains to the previous entry', x.card_id,
           x.before + x.amount, x.balance_after,
           'entry ' || x.entry_id || ' (' || x.kind || ')'
    FROM (SELECT l.card_id, l.entry_id, l.kind, l.amount, l.balance_after,
                 lag(l.balance_after, 1, 0::bigint) OVER (PARTITION BY l.card_id
                                                          ORDER BY l.entry_id) AS before
          FROM public.ledger l) x
    WHERE x.balance_after <> x.before + x.amount
    UNION ALL
    -- (what an entry names exists: its card, station, route, fare and recharge point are
    -- checked when it is written and never removed; one pass, hashing each)
    SELECT 2, 'entry names an existing ' || x.what, l.card_id, 1, 0,
           'entry ' || l.entry_id || ' (' || l.kind || ') names a missing ' || x.what
    FROM public.ledger l
    LEFT JOIN public.cards c ON c.card_id = l.card_id
    LEFT JOIN public.stations s ON s.station_id = l.station_id
    LEFT JOIN public.routes r ON r.route_id = l.route_id
    LEFT JOIN public.fares f ON f.fare_id = l.fare_id
    LEFT JOIN public.recharge_points p ON p.point_id = l.point_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN c.card_id IS NULL THEN 'card'
                    WHEN l.station_id IS NOT NULL AND s.station_id IS NULL THEN 'station'
                    WHEN l.route_id IS NOT NULL AND r.route_id IS NULL THEN 'route'
                    WHEN l.fare_id IS NOT NULL AND f.fare_id IS NULL THEN 'fare'
                    WHEN l.point_id IS NOT NULL AND p.point_id IS NULL THEN 'recharge point'
               END AS what) x
    WHERE x.what IS NOT NULL
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
    --     clock skew, limits.max_future_minutes). A replacement card may carry a leg boarded
    --     before it was issued, with the card it replaces (a late tap is charged to the card
    --     that holds the money), never before the chain's first card. One pass over each
    --     movement table, probing an in-memory hash of the cards; one row per card and kind
    --     of movement.
    SELECT 10, CASE WHEN m.at > h.horizon THEN m.kind || ' in the future'
                    ELSE m.kind || ' before its card was issued' END,
           m.card_id, NULL, count(*),
           count(*) || ' ' || m.kind || '(s), the first at ' || min(m.at) || ', the last at '
             || max(m.at) || '; card issued at ' || c.issued_at
    FROM (SELECT l.card_id, CASE l.kind WHEN 'fare' THEN 'trip' WHEN 'recharge' THEN 'recharge'
                                        ELSE 'ledger entry' END AS kind,
                 coalesce(l.boarding_time, l.created_at) AS at
          FROM public.ledger l
          UNION ALL
          SELECT s.card_id, 'status change', s.changed_at FROM public.card_status_changes s) m
    JOIN public.cards c ON c.card_id = m.card_id
    LEFT JOIN origins o ON m.kind = 'trip' AND o.card_id = m.card_id
    CROSS JOIN horizon h
    WHERE m.at < coalesce(o.first_issued, c.issued_at) OR m.at > h.horizon
    GROUP BY m.card_id, m.kind, c.issued_at, m.at > h.horizon
    UNION ALL
    SELECT 10, CASE WHEN coalesce(c.personalised_at, c.issued_at) < u.registered_at
                    THEN 'card issued before its owner registered'
                    ELSE 'card issued in the future' END,
           c.card_id, NULL, NULL,
           'issued at ' || c.issued_at || coalesce(', user ' || u.user_id || ' registered at '
                                                   || u.registered_at, '')
    FROM public.cards c
    LEFT JOIN public.users u ON u.user_id = c.user_id
    CROSS JOIN horizon h
    WHERE coalesce(c.personalised_at, c.issued_at) < u.registered_at OR c.issued_at > h.horizon
    UNION ALL
    SELECT 10, 'user registered in the future', NULL, NULL, NULL,
           'user ' || u.user_id || ' registered at ' || u.registered_at
    FROM public.users u
    WHERE u.registered_at > (SELECT h.horizon FROM horizon h)
    UNION ALL
    -- 11. benefit trips: per card and month, granted = used + lapsed + left (a card's rows of
    --     a month add up to what it holds of that month now; 0 for any other month)
    SELECT 11, 'benefit trips add up', x.card_id, x.held, x.total, 'month ' || x.trips_month
    FROM (SELECT l.card_id, l.trips_month, sum(l.trips)::bigint AS total,
                 (CASE WHEN c.benefit_month = l.trips_month THEN coalesce(c.benefit_trips, 0)
                       ELSE 0 END)::bigint AS held
          FROM public.ledger l JOIN public.cards c ON c.card_id = l.card_id
          WHERE l.trips IS NOT NULL
          GROUP BY l.card_id, l.trips_month, c.benefit_month, c.benefit_trips) x
    WHERE x.total <> x.held
    UNION ALL
    SELECT 11, 'benefit trips add up', c.card_id, 0, c.benefit_trips,
           'holds trips of ' || c.benefit_month || ' without their entries'
    FROM public.cards c
    WHERE c.benefit_trips > 0 AND NOT EXISTS (
        SELECT 1 FROM public.ledger l WHERE l.card_id = c.card_id AND l.trips_month = c.benefit_month)
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
    -- 4. an idempotency key names one operation of its card: a movement's key is unique per
    --    card (the unique index ledger_key, which must be there and valid), a status change's
    --    is the primary key of idempotency_keys, and no key names both
    SELECT 4, 'movement keys are unique per card', NULL, 1, 0,
           'the unique index ledger_key is missing or not valid'
    WHERE NOT EXISTS (SELECT 1 FROM pg_index i
                      WHERE i.indexrelid = to_regclass('public.ledger_key') AND i.indisunique
                        AND i.indisvalid)
    UNION ALL
    SELECT 4, 'idempotency key names one operation', k.card_id, 1, 2,
           'key ' || k.idempotency_key || ' names a status change and entry ' || l.entry_id
    FROM public.idempotency_keys k
    JOIN public.ledger l ON l.card_id = k.card_id AND l.idempotency_key = k.idempotency_key
    UNION ALL
    -- 5. totals: sum of balances = recharged - fares - reversed (+ transfers, which sum to 0)
    SELECT 5, 'total balances equal recharged minus fares minus reversed', NULL,
           t.recharged - t.fares - t.reversed + t.transferred, t.balances,
           'recharged ' || t.recharged || ', fares ' || t.fares || ', reversed ' || t.reversed
             || ', transfers ' || t.transferred
    FROM (SELECT coalesce(sum(l.amount) FILTER (WHERE l.kind = 'recharge'), 0) AS recharged,
                 coalesce(-sum(l.amount) FILTER (WHERE l.kind = 'fare'), 0) AS fares,
                 coalesce(-sum(l.amount) FILTER (WHERE l.kind = 'correction'), 0) AS reversed,
                 coalesce(sum(l.amount) FILTER (WHERE l.kind = 'transfer'), 0) AS transferred,
                 (SELECT coalesce(sum(c.balance), 0) FROM public.cards c) AS balances
          FROM public.ledger l) t
    WHERE t.recharged - t.fares - t.reversed + t.transferred <> t.balances
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

-- Incremental verify (`recharge verify`; `--full` runs verify_ledger). The run finds the
-- checkpoint of the last clean run (verify_checkpoint), the horizon up to which every entry
-- is final (verify_horizon), then in one REPEATABLE READ snapshot checks what changed since
-- the checkpoint (verify_changes) and, when nothing is wrong, moves the checkpoint to the
-- horizon (verify_checkpoint_set).

-- The highest entry id H such that every entry with an id up to H that will ever commit has
-- committed. Every writer locks its card (a row lock: the cards table is then locked in a
-- row mode by its transaction) before it draws an entry id, so the transactions that may
-- still write an id up to the last one drawn are among those holding such a lock on cards
-- or ledger now; once they have ended, that id is the horizon. Only this database's
-- transactions count (a long transaction elsewhere on the server holds nothing back). NULL
-- when they did not end within p_wait seconds.
CREATE OR REPLACE FUNCTION verify_horizon(p_wait double precision)
RETURNS bigint
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_high bigint;
    v_writers text[];
    v_until timestamptz := clock_timestamp() + make_interval(secs => p_wait);
BEGIN
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s',
                   pg_get_serial_sequence('public.ledger', 'entry_id'))
    INTO v_high;
    SELECT coalesce(array_agg(DISTINCT l.virtualtransaction), '{}') INTO v_writers
    FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                        WHERE d.datname = current_database())
      AND l.relation IN ('public.cards'::regclass, 'public.ledger'::regclass)
      AND l.mode IN ('RowShareLock', 'RowExclusiveLock');
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                       WHERE l.locktype = 'virtualxid' AND l.virtualxid = ANY (v_writers)) THEN
            RETURN v_high;
        END IF;
        EXIT WHEN clock_timestamp() >= v_until;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION verify_checkpoint()
RETURNS TABLE (entry_id bigint, cards_up_to bigint, recharged bigint, fares bigint,
               reversed bigint, transferred bigint, full_run boolean, verified_at timestamptz)
LANGUAGE sql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT v.entry_id, v.cards_up_to, v.recharged, v.fares, v.reversed, v.transferred, v.full_run,
           v.verified_at
    FROM public.verify_checkpoint v
$$;

-- After a clean run: entries up to p_entry and the cards the run saw are verified. The
-- totals move by the entries after the old checkpoint up to p_entry (all of them for a full
-- run). Called in the run's snapshot.
DROP FUNCTION IF EXISTS verify_checkpoint_set(bigint, bigint, boolean);
CREATE OR REPLACE FUNCTION verify_checkpoint_set(p_entry bigint, p_full boolean)
RETURNS void
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_old public.verify_checkpoint;
BEGIN
    SELECT * INTO v_old FROM public.verify_checkpoint FOR UPDATE;
    IF p_full OR v_old.entry_id IS NULL THEN
        v_old.entry_id := 0;
        v_old.recharged := 0;
        v_old.fares := 0;
        v_old.reversed := 0;
        v_old.transferred := 0;
    END IF;
    INSERT INTO public.verify_checkpoint AS v (entry_id, cards_up_to, recharged, fares, reversed,
                                               transferred, full_run, verified_at)
    SELECT p_entry, (SELECT coalesce(max(c.card_id), 0) FROM public.cards c),
           v_old.recharged + coalesce(sum(l.amount) FILTER (WHERE l.kind = 'recharge'), 0),
           v_old.fares - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'fare'), 0),
           v_old.reversed - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'correction'), 0),
           v_old.transferred + coalesce(sum(l.amount) FILTER (WHERE l.kind = 'transfer'), 0),
           p_full, now()
    FROM public.ledger l
    WHERE l.entry_id / 65536 >= v_old.entry_id / 65536
      AND l.entry_id > v_old.entry_id AND l.entry_id <= p_entry
    ON CONFLICT (singleton) DO UPDATE
        SET entry_id = excluded.entry_id, cards_up_to = excluded.cards_up_to,
            recharged = excluded.recharged, fares = excluded.fares,
            reversed = excluded.reversed, transferred = excluded.transferred,
            full_run = excluded.full_run, verified_at = excluded.verified_at;
END $$;

-- Invariant 6 over the days the entries after p_entry touched: their rollups equal the
-- recomputation (rows as verify_changes').
CREATE OR REPLACE FUNCTION verify_touched_rollups(p_entry bigint)
RETURNS TABLE (invariant integer, check_name text, card_id bigint, expected bigint,
               actual bigint, detail text)
LANGUAGE sql
    SECURITY DEFINER SET search_path = public, pg_temp SET jit = off SET work_mem = '256MB' AS $$
    SELECT 6, 'rollup equals recomputation', NULL::bigint, NULL::bigint, NULL::bigint,
           v.day || ' ' || v.rollup || ': stored ' || coalesce(v.stored, 'nothing')
             || ', recomputed ' || coalesce(v.recomputed, 'nothing')
    FROM public.verify_rollups((
        SELECT coalesce(array_agg(DISTINCT (coalesce(l.boarding_time, l.created_at)
                                            AT TIME ZONE s.time_zone)::date), '{}')
        FROM public.ledger l CROSS JOIN public.rollup_state s
        WHERE l.entry_id / 65536 >= p_entry / 65536 AND l.entry_id > p_entry
          AND l.kind IN ('recharge', 'fare', 'correction'))) v
$$;

-- (work_mem: a day's new entries are sorted and hashed in memory; 4 MB would spill them
-- to disk. It is memory a verify run may take per sort or hash, not memory it holds.)
-- The invariants over what changed after the checkpoint (entries after p_entry, cards after
-- p_card, and the cards and days those touched); one row per violation, as verify_ledger.
-- Entries after the horizon that are already visible are checked too (a card's entries
-- commit in the order of their ids, the card's lock orders them); the checkpoint moves only
-- to the horizon. Balances equal the sum of the entries by induction: every entry chains
-- to its card's previous one, and the card's balance is its last entry's balance_after.
-- With p_rollups false the rollups are left to verify_touched_rollups, which a second
-- connection runs in the same snapshot, side by side.
DROP FUNCTION IF EXISTS verify_changes(bigint, bigint);
CREATE OR REPLACE FUNCTION verify_changes(p_entry bigint, p_card bigint,
                                          p_rollups boolean DEFAULT true)
RETURNS TABLE (invariant integer, check_name text, card_id bigint, expected bigint,
               actual bigint, detail text)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp SET jit = off SET work_mem = '256MB' AS $$
#variable_conflict use_column
DECLARE
    v_check public.verify_checkpoint;
BEGIN
    SELECT * INTO v_check FROM public.verify_checkpoint;
    DROP TABLE IF EXISTS pg_temp.verify_new, pg_temp.verify_cards;
    CREATE TEMP TABLE verify_new ON COMMIT DROP AS
        SELECT l.* FROM public.ledger l
        WHERE l.entry_id / 65536 >= p_entry / 65536 AND l.entry_id > p_entry;
    CREATE TEMP TABLE verify_cards ON COMMIT DROP AS
        SELECT DISTINCT n.card_id FROM verify_new n
        UNION SELECT c.card_id FROM public.cards c WHERE c.card_id > p_card;
    ANALYZE verify_new, verify_cards;

    RETURN QUERY
    -- 2. each new entry chains to its card's previous entry
    WITH before AS (  -- each touched card's last entry up to the checkpoint
        SELECT t.card_id, p.balance_after FROM verify_cards t
        LEFT JOIN LATERAL (SELECT l.balance_after FROM public.ledger l
                           WHERE l.card_id = t.card_id AND l.entry_id <= p_entry
                           ORDER BY l.entry_id DESC LIMIT 1) p ON true
    ), chained AS (
        SELECT n.card_id, n.entry_id, n.kind, n.amount, n.balance_after,
               coalesce(lag(n.balance_after) OVER (PARTITION BY n.card_id ORDER BY n.entry_id),
                        b.balance_after, 0) AS before,
               row_number() OVER (PARTITION BY n.card_id ORDER BY n.entry_id DESC) AS from_last
        FROM verify_new n LEFT JOIN before b ON b.card_id = n.card_id
    ), last_entries AS (  -- each touched card's last entry: a new one, else the one before
        SELECT b.card_id, coalesce(x.balance_after, b.balance_after) AS balance_after
        FROM before b LEFT JOIN chained x ON x.card_id = b.card_id AND x.from_last = 1
    )
    SELECT 2, 'entry balance chains to the previous entry', x.card_id, x.before + x.amount,
           x.balance_after, 'entry ' || x.entry_id || ' (' || x.kind || ')'
    FROM chained x WHERE x.balance_after <> x.before + x.amount
    UNION ALL
    SELECT 2, 'entry names an existing ' || x.what, n.card_id, 1, 0,
           'entry ' || n.entry_id || ' (' || n.kind || ') names a missing ' || x.what
    FROM verify_new n
    LEFT JOIN public.cards c ON c.card_id = n.card_id
    LEFT JOIN public.stations s ON s.station_id = n.station_id
    LEFT JOIN public.routes r ON r.route_id = n.route_id
    LEFT JOIN public.fares f ON f.fare_id = n.fare_id
    LEFT JOIN public.recharge_points p ON p.point_id = n.point_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN c.card_id IS NULL THEN 'card'
                    WHEN n.station_id IS NOT NULL AND s.station_id IS NULL THEN 'station'
                    WHEN n.route_id IS NOT NULL AND r.route_id IS NULL THEN 'route'
                    WHEN n.fare_id IS NOT NULL AND f.fare_id IS NULL THEN 'fare'
                    WHEN n.point_id IS NOT NULL AND p.point_id IS NULL THEN 'recharge point'
               END AS what) x
    WHERE x.what IS NOT NULL
    UNION ALL
    -- 1. a touched card's balance is its last entry's balance_after (0 without entries)
    SELECT 1, 'balance equals ledger sum', c.card_id, coalesce(e.balance_after, 0), c.balance,
           NULL
    FROM last_entries e JOIN public.cards c ON c.card_id = e.card_id
    WHERE c.balance <> coalesce(e.balance_after, 0)
    UNION ALL
    -- 11. benefit trips of the touched cards add up, per month
    SELECT 11, 'benefit trips add up', x.card_id, x.held, x.total, 'month ' || x.trips_month
    FROM (SELECT l.card_id, l.trips_month, sum(l.trips)::bigint AS total,
                 (CASE WHEN c.benefit_month = l.trips_month THEN coalesce(c.benefit_trips, 0)
                       ELSE 0 END)::bigint AS held
          FROM verify_cards t JOIN public.cards c ON c.card_id = t.card_id
          JOIN public.ledger l ON l.card_id = t.card_id AND l.trips IS NOT NULL
          GROUP BY l.card_id, l.trips_month, c.benefit_month, c.benefit_trips) x
    WHERE x.total <> x.held
    UNION ALL
    -- 3. touched balances within [-credit allowance (0 anonymous), maximum balance]
    SELECT 3, 'balance within limits', c.card_id,
           CASE WHEN c.balance > lim.max_balance THEN lim.max_balance
                WHEN c.user_id IS NULL THEN 0 ELSE -lim.credit_allowance END,
           c.balance, NULL
    FROM verify_cards t JOIN public.cards c ON c.card_id = t.card_id CROSS JOIN public.limits lim
    WHERE c.balance > lim.max_balance
       OR c.balance < CASE WHEN c.user_id IS NULL THEN 0 ELSE -lim.credit_allowance END
    UNION ALL
    -- 4. keys: the unique index is there; no new key names a status change too
    SELECT 4, 'movement keys are unique per card', NULL, 1, 0,
           'the unique index ledger_key is missing or not valid'
    WHERE NOT EXISTS (SELECT 1 FROM pg_index i
                      WHERE i.indexrelid = to_regclass('public.ledger_key') AND i.indisunique
                        AND i.indisvalid)
    UNION ALL
    SELECT 4, 'idempotency key names one operation', k.card_id, 1, 2,
           'key ' || k.idempotency_key || ' names a status change and entry ' || n.entry_id
    FROM verify_new n
    JOIN public.idempotency_keys k ON k.card_id = n.card_id AND k.idempotency_key = n.idempotency_key
    UNION ALL
    -- 5. totals: the balances equal the checkpoint's totals moved by the new entries
    SELECT 5, 'total balances equal recharged minus fares minus reversed', NULL, t.expected,
           t.balances, 'since the checkpoint at entry ' || p_entry
    FROM (SELECT (coalesce(v_check.recharged - v_check.fares - v_check.reversed
                           + v_check.transferred, 0)
                  + (SELECT coalesce(sum(n.amount), 0) FROM verify_new n))::bigint AS expected,
                 (SELECT coalesce(sum(c.balance), 0) FROM public.cards c)::bigint AS balances) t
    WHERE t.expected <> t.balances
    UNION ALL
    -- 6. counts; the rollups of the days the new entries touched
    SELECT 6, 'entity count equals recomputation', NULL, x.expected, x.actual, x.what
    FROM public.entity_counts e,
         LATERAL (VALUES ('users', (SELECT count(*) FROM public.users), e.users),
                         ('cards', (SELECT count(*) FROM public.cards), e.cards),
                         ('active cards', (SELECT count(*) FROM public.cards c
                                           WHERE c.status = 'active'), e.active_cards))
                 x (what, expected, actual)
    WHERE x.expected <> x.actual
    UNION ALL
    SELECT * FROM public.verify_touched_rollups(p_entry) WHERE p_rollups
    UNION ALL
    -- 7. a new reversal reverses one recharge of its card, by its whole amount
    SELECT 7, 'reversal reverses one recharge', n.card_id, -r.amount, n.amount,
           'entry ' || n.entry_id || ' corrects entry ' || n.corrects_entry_id
    FROM verify_new n
    LEFT JOIN public.ledger r ON r.card_id = n.card_id AND r.entry_id = n.corrects_entry_id
    WHERE n.kind = 'correction' AND (r.kind IS DISTINCT FROM 'recharge' OR n.amount <> -r.amount)
    UNION ALL
    -- 8. new replacement entries come in linked pairs that sum to zero; a replaced card holds 0
    SELECT 8, 'linked entries sum to zero', n.card_id, -n.amount, o.amount,
           'entry ' || n.entry_id || ' and card ' || n.counterpart_card_id || ' entry '
             || n.counterpart_entry_id
    FROM verify_new n
    LEFT JOIN public.ledger o ON o.card_id = n.counterpart_card_id
                             AND o.entry_id = n.counterpart_entry_id
    WHERE n.kind = 'transfer' AND (o.kind IS DISTINCT FROM 'transfer' OR o.amount <> -n.amount
                                   OR o.counterpart_entry_id <> n.entry_id)
    UNION ALL
    SELECT 8, 'replaced card holds 0', c.card_id, 0, c.balance, 'replaced by ' || c.replaced_by
    FROM verify_cards t JOIN public.cards c ON c.card_id = t.card_id
    LEFT JOIN public.cards n ON n.card_id = c.replaced_by
    WHERE c.replaced_by IS NOT NULL AND (c.balance <> 0 OR n.replaces IS DISTINCT FROM c.card_id)
    UNION ALL
    -- 9. every status change since the checkpoint's run has its audit row
    SELECT 9, 'status change has its audit row', s.card_id, 1, 0,
           s.old_status || ' -> ' || s.new_status || ' at ' || s.changed_at
    FROM public.card_status_changes s
    WHERE s.operator IS NOT NULL
      AND s.changed_at >= coalesce(v_check.verified_at, '-infinity') - interval '1 day'
      AND NOT EXISTS (
        SELECT 1 FROM public.audit_log a
        WHERE a.card_id = s.card_id AND a.action = 'status' AND a.at = s.changed_at
          AND a.details ->> 'to' = s.new_status)
    UNION ALL
    -- 10. time coherence of the new entries and the new cards
    SELECT 10, CASE WHEN m.at > now() + make_interval(mins => lim.max_future_minutes)
                    THEN m.kind || ' in the future'
                    ELSE m.kind || ' before its card was issued' END,
           m.card_id, NULL, count(*),
           count(*) || ' ' || m.kind || '(s), the first at ' || min(m.at) || ', the last at '
             || max(m.at) || '; card issued at ' || c.issued_at
    FROM (SELECT n.card_id, CASE n.kind WHEN 'fare' THEN 'trip' WHEN 'recharge' THEN 'recharge'
                                        ELSE 'ledger entry' END AS kind,
                 coalesce(n.boarding_time, n.created_at) AS at
          FROM verify_new n) m
    JOIN public.cards c ON c.card_id = m.card_id
    CROSS JOIN public.limits lim
    LEFT JOIN LATERAL (  -- a late tap of a replaced card, charged to its replacement
        WITH RECURSIVE chain AS (
            SELECT p.card_id, p.issued_at, p.replaces FROM public.cards p
            WHERE p.card_id = c.replaces
            UNION ALL
            SELECT p.card_id, p.issued_at, p.replaces FROM chain ch
            JOIN public.cards p ON p.card_id = ch.replaces)
        SELECT min(ch.issued_at) AS first_issued FROM chain ch) o
        ON m.kind = 'trip' AND c.replaces IS NOT NULL
    WHERE m.at < coalesce(o.first_issued, c.issued_at)
       OR m.at > now() + make_interval(mins => lim.max_future_minutes)
    GROUP BY m.card_id, m.kind, c.issued_at,
             m.at > now() + make_interval(mins => lim.max_future_minutes)
    UNION ALL
    SELECT 10, CASE WHEN coalesce(c.personalised_at, c.issued_at) < u.registered_at
                    THEN 'card issued before its owner registered'
                    ELSE 'card issued in the future' END,
           c.card_id, NULL, NULL,
           'issued at ' || c.issued_at || coalesce(', user ' || u.user_id || ' registered at '
                                                   || u.registered_at, '')
    FROM verify_cards t JOIN public.cards c ON c.card_id = t.card_id
    LEFT JOIN public.users u ON u.user_id = c.user_id
    CROSS JOIN public.limits lim
    WHERE coalesce(c.personalised_at, c.issued_at) < u.registered_at
       OR c.issued_at > now() + make_interval(mins => lim.max_future_minutes)
    UNION ALL
    SELECT 10, 'user registered in the future', NULL, NULL, NULL,
           'user ' || u.user_id || ' registered at ' || u.registered_at
    FROM public.users u CROSS JOIN public.limits lim
    WHERE u.registered_at > now() + make_interval(mins => lim.max_future_minutes);
END $$;
