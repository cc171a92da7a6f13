-- Demo data generated server-side and set-based. Every pseudo-random choice is a hash
-- of (seed, stream, row), so the same seed and end date give the same data.

CREATE OR REPLACE FUNCTION seed_rand(p_seed bigint, p_stream integer, p_row bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashint8extended(p_row * 1000003 + p_stream, p_seed) & 9223372036854775807
$$;

DROP FUNCTION IF EXISTS seed_activity(bigint, bigint, bigint, date);

-- The demo's timeline, in the session's time zone: movements lie in the 90 days before
-- p_end (its midnight, which a load never passes: see demo.load), each card's first
-- recharge in the hours before them, every card is issued before its first movement (by
-- the day before the period at the latest) and every personalised card after its owner
-- registered. Users register over the 3 years before the cards' last issue day, in the
-- order of their ids; user u registered this many seconds (1 or more) before that day.
CREATE OR REPLACE FUNCTION seed_registered_before(p_seed bigint, p_user bigint, p_users bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((p_users - p_user) * (3 * 365 * 86400)
            + 1 + public.seed_rand(p_seed, 5, p_user) % (3 * 365 * 86400)) / p_users
$$;

-- Stations, routes, recharge points and users; the cards come with their activity
-- (seed_activity). Runs first, in the load's transaction, on an empty database.
CREATE OR REPLACE FUNCTION seed_catalog(p_scale numeric, p_seed bigint, p_end date)
RETURNS TABLE (users bigint, cards bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_users bigint := greatest(1, round(25000 * p_scale));
    v_cards bigint := greatest(1, round(24000 * p_scale));
    v_issued timestamptz := p_end - interval '91 days';  -- the cards' last issue day
BEGIN
    IF EXISTS (SELECT 1 FROM public.cards) OR EXISTS (SELECT 1 FROM public.stations) THEN
        RAISE EXCEPTION 'the database already holds demo or live data; seed an empty database'
            USING ERRCODE = 'RC004';
    END IF;
    INSERT INTO public.stations (station_id, name, station_type, locality_id)
    SELECT i, coalesce(n.name, 'Paradero zonal ' || i), coalesce(n.station_type, 'ZONAL_PARADERO'),
           coalesce(n.locality_id, 1 + public.seed_rand(p_seed, 1, i) % 13)
    FROM generate_series(1, 7700) AS i
    LEFT JOIN public.station_names n ON n.station_id = i;  -- 1-153: published names (0016)

    INSERT INTO public.routes (route_id, code, route_type)
    SELECT i,
           CASE WHEN i <= 120 THEN 'T' WHEN i <= 220 THEN 'A' WHEN i <= 558 THEN 'Z' ELSE 'C' END
               || lpad(i::text, 3, '0'),
           CASE WHEN i <= 120 THEN 'TRONCAL' WHEN i <= 220 THEN 'ALIMENTADORA'
                WHEN i <= 558 THEN 'ZONAL_UCE' ELSE 'CABLE' END
    FROM generate_series(1, 560) AS i;

    INSERT INTO public.recharge_points (point_id, name, station_id, locality_id, channel)
    SELECT i,
           CASE WHEN i <= 153 THEN 'Taquilla ' || n.name WHEN i <= 390 THEN 'Punto externo ' || i
                ELSE 'Recarga en línea ' || i END,
           CASE WHEN i <= 153 THEN i END,
           CASE WHEN i <= 153 THEN n.locality_id
                WHEN i <= 390 THEN 1 + public.seed_rand(p_seed, 2, i) % 13 END,
           CASE WHEN i <= 153 THEN 'station_kiosk' WHEN i <= 390 THEN 'retail' ELSE 'online' END
    FROM generate_series(1, 400) AS i
    LEFT JOIN public.station_names n ON n.station_id = i;

    INSERT INTO public.users (user_id, document, full_name, email, registered_at)
    SELECT i, 'CC' || (10000000 + i),
           (ARRAY['Ana', 'Luis', 'María', 'Carlos', 'Laura', 'Andrés', 'Sofía', 'Jorge',
                  'Valentina', 'Diego'])[1 + public.seed_rand(p_seed, 3, i) % 10]
               || ' ' ||
           (ARRAY['Rodríguez', 'Gómez', 'González', 'Martínez', 'García', 'López', 'Hernández',
                  'Sánchez', 'Ramírez', 'Torres'])[1 + public.seed_rand(p_seed, 4, i) % 10],
           'user' || i || '@example.com',
           v_issued - make_interval(secs => public.seed_registered_before(p_seed, i, v_users))
    FROM generate_series(1, v_users) AS i;

    -- the generation joins every leg with these rules: with their statistics, in one hash
    ANALYZE public.fares, public.transfer_rules;
    PERFORM setval('public.card_id_seq', v_cards);
    PERFORM setval('public.user_id_seq', v_users);
    -- the movement tables are empty: their ids start at 1 whatever an earlier, rolled-back
    -- load took from the sequences
    PERFORM setval(pg_get_serial_sequence('public.ledger', 'entry_id'), 1, false);
    RETURN QUERY SELECT v_users, v_cards;
END $$;

-- Cards p_from..p_to: their owner (one card in ten is anonymous) and final status. Card 789
-- (the documented example) is personalised and active.
CREATE OR REPLACE FUNCTION seed_cards(p_from bigint, p_to bigint, p_users bigint, p_seed bigint)
RETURNS TABLE (card_id bigint, user_id bigint, status text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT i,
           CASE WHEN i = 789 OR public.seed_rand(p_seed, 8, i) % 10 <> 0
                THEN 1 + public.seed_rand(p_seed, 6, i) % p_users END,
           CASE WHEN i = 789 OR r < 880 THEN 'active' WHEN r < 940 THEN 'inactive'
                WHEN r < 975 THEN 'blocked' ELSE 'lost' END
    FROM generate_series(p_from, p_to) AS i,
         LATERAL (SELECT public.seed_rand(p_seed, 7, i) % 1000 AS r) AS x
$$;

-- Before the load, in its transaction: drops every foreign key of the schema and the
-- indexes, primary keys and unique constraints of the movement tables, and returns the
-- statements that restore them (indexes and keys first, then the planner statistics of the
-- loaded tables, then foreign keys), to run after the load in the same transaction. The
-- rows then go in without per-row index upkeep or key checks; the restore builds each
-- index in one sort and checks each foreign key with one join over the whole table (planned
-- with the fresh statistics), so every constraint still holds for every row. Names come
-- from the catalog, whatever the migrations called them.
-- The triggers that mark the days of old rows dirty for the rollups are disabled for the
-- load's transaction too (and enabled again by the last statements): the rollups are reset
-- to "nothing rolled up" (an empty database has nothing to roll up), so every loaded day is
-- read live until the rollup build that follows the load covers it.
CREATE OR REPLACE FUNCTION seed_suspend_keys() RETURNS TABLE (statement text)
LANGUAGE plpgsql AS $$
DECLARE
    v_movements oid[] := ARRAY['public.ledger'::regclass];
    v_item record;
BEGIN
    CREATE TEMP TABLE seed_suspended ON COMMIT DROP AS
    SELECT format('ALTER TABLE public.%I DROP CONSTRAINT %I', t.relname, c.conname) AS drop_ddl,
           format('ALTER TABLE public.%I ADD CONSTRAINT %I %s', t.relname, c.conname,
                  pg_get_constraintdef(c.oid)) AS restore_ddl,
           c.contype = 'f' AS foreign_key, c.conname AS name
    FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
    WHERE c.connamespace = 'public'::regnamespace
      AND (c.contype = 'f' OR (c.contype IN ('p', 'u') AND c.conrelid = ANY (v_movements)))
    UNION ALL
    SELECT format('DROP INDEX public.%I', x.relname), pg_get_indexdef(i.indexrelid), false,
           x.relname
    FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
    WHERE i.indrelid = ANY (v_movements)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                      WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'));
    FOR v_item IN SELECT s.drop_ddl FROM seed_suspended s ORDER BY NOT s.foreign_key, s.name LOOP
        EXECUTE v_item.drop_ddl;
    END LOOP;

    UPDATE public.rollup_state SET rolled_until = '-infinity', built_at = NULL;
    DELETE FROM public.rollup_dirty;
    DELETE FROM public.daily_revenue;
    DELETE FROM public.daily_trips;
    DELETE FROM public.daily_riders;
    CREATE TEMP TABLE seed_dirty_triggers ON COMMIT DROP AS
    SELECT t.tgrelid::regclass AS rel, t.tgname AS name,
           CASE t.tgenabled WHEN 'A' THEN 'ALWAYS ' WHEN 'R' THEN 'REPLICA ' ELSE '' END AS mode
    FROM pg_trigger t
    WHERE t.tgfoid = 'public.mark_dirty_days()'::regprocedure AND t.tgenabled <> 'D'
      AND NOT t.tgisinternal;
    FOR v_item IN SELECT d.rel, d.name FROM seed_dirty_triggers d LOOP
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', v_item.rel, v_item.name);
    END LOOP;

    RETURN QUERY
    SELECT r.ddl FROM (
        SELECT 1 AS step, s.name, s.restore_ddl AS ddl FROM seed_suspended s WHERE NOT s.foreign_key
        UNION ALL
        SELECT 2, '', 'ANALYZE'  -- the whole database, as the rules were never analysed
        UNION ALL
        SELECT 3, s.name, s.restore_ddl FROM seed_suspended s WHERE s.foreign_key
        UNION ALL
        SELECT 4, d.name, format('ALTER TABLE %s ENABLE %sTRIGGER %I', d.rel, d.mode, d.name)
        FROM seed_dirty_triggers d
    ) r ORDER BY r.step, r.name;
    DROP TABLE seed_suspended;
    DROP TABLE seed_dirty_triggers;
END $$;

-- Recharges over the 90 days and trip legs for cards p_from..p_to (one ledger row each),
-- the cards with their balances, and the history of their final statuses. Each card's
-- first recharge, made before the period, covers the period's fares, so no balance ever
-- leaves the limits. Ids follow the sequences, in card and time order.
CREATE OR REPLACE FUNCTION seed_activity(p_from bigint, p_to bigint, p_users bigint,
                                         p_seed bigint, p_end date)
RETURNS TABLE (recharges bigint, legs bigint)
LANGUAGE plpgsql
    SET jit = off AS $$  -- compiling these plans would take longer than running them
DECLARE
    v_start date := p_end - 90;
    v_end timestamptz := p_end;  -- the period's end: every movement lies before it …
    v_last timestamptz := v_end - interval '1 second';  -- … by a second at least
    v_issued timestamptz := p_end - interval '91 days';
    v_days integer[];           -- one element per unit of weight: the day's offset
    v_weekday_hours integer[];  -- the same for the hour of a journey on a weekday …
    v_weekend_hours integer[];  -- … and on a weekend day
    v_midnights timestamptz[];  -- by day offset + 1: the day's start …
    v_weekend boolean[];        -- … and whether it is a Saturday or Sunday
    v_entry_base bigint := nextval(pg_get_serial_sequence('public.ledger', 'entry_id'));
    v_legs bigint;
    v_recharges bigint;
BEGIN
    SELECT array_agg(d ORDER BY d) INTO v_days
    FROM generate_series(0, 89) AS d,
         generate_series(1, CASE extract(isodow FROM v_start + d) WHEN 6 THEN 11 WHEN 7 THEN 8
                                                                  ELSE 16 END);
    SELECT array_agg((v_start + d)::timestamptz ORDER BY d),
           array_agg(extract(isodow FROM v_start + d) >= 6 ORDER BY d)
    INTO v_midnights, v_weekend
    FROM generate_series(0, 89) AS d;
    SELECT array_agg(u.h - 1 ORDER BY u.h) INTO v_weekday_hours
    FROM unnest(ARRAY[1, 1, 1, 1, 4, 14, 22, 20, 11, 7, 6, 6, 7, 7, 6, 7, 11, 19, 17, 10, 6, 4,
                      3, 2]) WITH ORDINALITY AS u(w, h), generate_series(1, u.w);
    SELECT array_agg(u.h - 1 ORDER BY u.h) INTO v_weekend_hours
    FROM unnest(ARRAY[1, 1, 1, 1, 2, 4, 6, 8, 10, 11, 12, 12, 12, 12, 11, 11, 10, 10, 9, 8, 6, 4,
                      3, 2]) WITH ORDINALITY AS u(w, h), generate_series(1, u.w);

    WITH journeys AS (
        SELECT c.card_id, c.card_id * 64 + j AS jid, c.user_id IS NOT NULL AS personalised
        FROM public.seed_cards(p_from, p_to, p_users, p_seed) AS c
        JOIN generate_series(1, 18) AS j  -- (a join on a count: no function call per card)
          ON j <= 1 + (public.seed_rand(p_seed, 10, c.card_id) % 17)::integer
                  + CASE WHEN public.seed_rand(p_seed, 11, c.card_id) % 100 < 23 THEN 1 ELSE 0 END
        WHERE c.status <> 'inactive'
    ), timed AS (
        SELECT jn.card_id, jn.jid, jn.personalised,
               -- the day's start plus whole seconds: the same instant as v_start plus
               -- (days, hours, seconds), without a time zone lookup per journey
               v_midnights[1 + r.day] + make_interval(secs =>
                   3600 * CASE WHEN v_weekend[1 + r.day]
                               THEN v_weekend_hours[1 + (public.seed_rand(p_seed, 13, jn.jid)
                                                         % cardinality(v_weekend_hours))::integer]
                               ELSE v_weekday_hours[1 + (public.seed_rand(p_seed, 13, jn.jid)
                                                         % cardinality(v_weekday_hours))::integer]
                          END
                   + public.seed_rand(p_seed, 14, jn.jid) % 3600) AS t0,
               public.seed_rand(p_seed, 15, jn.jid) % 1000 AS transfer_draw,
               CASE WHEN r.service < 40 THEN 'TRONCAL' WHEN r.service < 80 THEN 'ZONAL_UCE'
                    WHEN r.service < 98 THEN 'ALIMENTADORA' ELSE 'CABLE' END AS s1,
               public.seed_rand(p_seed, 17, jn.jid) % 2 AS branch
        FROM journeys jn
        CROSS JOIN LATERAL (
            SELECT v_days[1 + (public.seed_rand(p_seed, 12, jn.jid) % cardinality(v_days))::integer]
                       AS day,
                   public.seed_rand(p_seed, 16, jn.jid) % 100 AS service) AS r
    ), chained AS (
        -- a journey's legs (transfers: personalised cards) and the offsets of its later legs;
        -- a journey of the period's last evening starts early enough for its last leg to lie
        -- in the period
        SELECT tm.card_id, tm.jid, tm.s1, x.s2,
               CASE WHEN x.s2 = 'TRONCAL' THEN CASE WHEN tm.branch = 0 THEN 'ZONAL_UCE'
                                                     ELSE 'ALIMENTADORA' END
                    ELSE 'TRONCAL' END AS s3,
               x.legs, o.second, o.third,
               least(tm.t0, v_last - CASE x.legs WHEN 1 THEN interval '0' WHEN 2 THEN o.second
                                                 ELSE o.third END) AS t0
        FROM timed tm
        CROSS JOIN LATERAL (
            SELECT CASE WHEN tm.s1 = 'TRONCAL' THEN CASE WHEN tm.branch = 0 THEN 'ZONAL_UCE'
                                                         ELSE 'ALIMENTADORA' END
                        ELSE 'TRONCAL' END AS s2,
                   CASE WHEN NOT tm.personalised THEN 1 WHEN tm.transfer_draw < 180 THEN 2
                        WHEN tm.transfer_draw < 200 THEN 3 ELSE 1 END AS legs) AS x
        CROSS JOIN LATERAL (
            SELECT CASE WHEN x.legs >= 2 THEN make_interval(mins => 5 + (public.seed_rand(
                            p_seed, 18, tm.jid) % 45)::integer) END AS second,
                   CASE WHEN x.legs = 3 THEN make_interval(mins => 55 + (public.seed_rand(
                            p_seed, 19, tm.jid) % 35)::integer) END AS third) AS o
    ), legs AS MATERIALIZED (
        SELECT ch.card_id, ch.jid, leg::smallint AS leg_number,
               CASE leg WHEN 1 THEN ch.t0 WHEN 2 THEN ch.t0 + ch.second ELSE ch.t0 + ch.third END
                   AS boarding_time,
               (ARRAY[ch.s1, ch.s2, ch.s3])[leg] AS service,
               CASE leg WHEN 1 THEN NULL ELSE (ARRAY[ch.s1, ch.s2, ch.s3])[leg - 1] END AS prev_service,
               public.seed_rand(p_seed, 20 + leg, ch.jid) AS draw
        FROM chained ch
        JOIN (VALUES (1), (2), (3)) AS l (leg) ON l.leg <= ch.legs
    ), priced AS (  -- station, route and fare of each leg
        SELECT l.card_id, l.jid, l.leg_number, l.boarding_time, l.service,
               CASE l.service
                   WHEN 'TRONCAL' THEN 1 + l.draw % 149
                   WHEN 'ZONAL_UCE' THEN 154 + l.draw % 7547
                   WHEN 'ALIMENTADORA' THEN CASE WHEN l.draw % 2 = 0 THEN 1 + l.draw % 9
                                                 ELSE 154 + l.draw % 7547 END
                   ELSE 150 + l.draw % 4 END::integer AS station_id,
               CASE l.service
                   WHEN 'TRONCAL' THEN 1 + (l.draw / 7) % 120
                   WHEN 'ALIMENTADORA' THEN 121 + (l.draw / 7) % 100
                   WHEN 'ZONAL_UCE' THEN 221 + (l.draw / 7) % 338
                   ELSE 559 + (l.draw / 7) % 2 END::integer AS route_id,
               f.fare_id, f.amount AS fare
        FROM legs l
        LEFT JOIN public.transfer_rules tr
               ON tr.from_service = l.prev_service AND tr.to_service = l.service
        JOIN public.fares f
          ON f.code = coalesce(tr.fare_code, CASE l.service WHEN 'CABLE' THEN 'CABLE'
                                                            ELSE 'STANDARD' END)
         AND f.valid_from <= l.boarding_time
         AND (f.valid_to IS NULL OR l.boarding_time < f.valid_to)
    ), due AS (
        SELECT f.card_id, sum(f.fare) AS fares FROM priced f GROUP BY f.card_id
    ), draws AS (  -- 1-5 recharges per card; the first also covers the period's fares
        SELECT c.card_id, k, c.card_id * 8 + k AS rid_key, coalesce(du.fares, 0) AS due
        FROM public.seed_cards(p_from, p_to, p_users, p_seed) AS c
        LEFT JOIN due du ON du.card_id = c.card_id
        JOIN generate_series(1, 5) AS k ON k <= 1 + (public.seed_rand(p_seed, 30, c.card_id) % 5)::integer
        WHERE c.status <> 'inactive'
    ), moves AS (
        -- amounts as integers (they are whole and far below 2^31): the running sums stay
        -- integer arithmetic
        SELECT f.card_id, true AS is_fare, (-f.fare)::integer AS amount, f.boarding_time AS at,
               f.jid AS sub, f.leg_number, f.service, f.station_id, f.route_id, f.fare_id,
               NULL::integer AS point_id
        FROM priced f
        UNION ALL
        SELECT d.card_id, false,
               (CASE WHEN d.k = 1 THEN greatest(base.amount, ((d.due + 999) / 1000) * 1000)
                     ELSE base.amount END)::integer,
               CASE WHEN d.k = 1
                    THEN v_start - make_interval(secs => 1 + public.seed_rand(p_seed, 32, d.rid_key)
                                                              % (6 * 3600))
                    ELSE v_start + make_interval(secs => public.seed_rand(p_seed, 32, d.rid_key)
                                                          % (90 * 86400)) END,
               d.k, NULL, NULL, NULL, NULL, NULL,
               (1 + public.seed_rand(p_seed, 33, d.rid_key) % 400)::integer
        FROM draws d
        CROSS JOIN LATERAL (SELECT (5 + public.seed_rand(p_seed, 31, d.rid_key) % 46) * 1000
                                   AS amount) AS base
    ), entries AS MATERIALIZED (
        -- one pass in each card's ledger order (time, then recharges before fares, recharge
        -- number, journey and leg): ids and running balances
        SELECT m.*,
               v_entry_base - 1 + row_number() OVER w AS entry_id,
               sum(m.amount) OVER (PARTITION BY m.card_id ORDER BY m.at, m.is_fare, m.sub,
                                                                m.leg_number
                                   ROWS UNBOUNDED PRECEDING) AS balance_after
        FROM moves m
        WINDOW w AS (ORDER BY m.card_id, m.at, m.is_fare, m.sub, m.leg_number
                     ROWS UNBOUNDED PRECEDING)
    ), issued AS (
        -- issued by the day before the period, a personalised card after its owner registered,
        -- an anonymous one in the 3 years before
        INSERT INTO public.cards (card_id, user_id, status, balance, version, issued_at,
                                  last_movement_at)
        SELECT c.card_id, c.user_id, c.status, coalesce(e.balance, 0), coalesce(e.entries, 0),
               v_issued - make_interval(secs => public.seed_rand(p_seed, 9, c.card_id)
                   % CASE WHEN c.user_id IS NULL THEN 3 * 365 * 86400
                          ELSE public.seed_registered_before(p_seed, c.user_id, p_users) END),
               e.last_at
        FROM public.seed_cards(p_from, p_to, p_users, p_seed) AS c
        LEFT JOIN (SELECT e.card_id, sum(e.amount) AS balance, count(*) AS entries,
                          max(e.at) AS last_at
                   FROM entries e GROUP BY e.card_id) AS e ON e.card_id = c.card_id
        ORDER BY c.card_id
        RETURNING card_id, status, coalesce(last_movement_at, issued_at) AS last_at
    ), changed AS (
        -- the history of the final statuses: inactive (never used), blocked and lost, each
        -- an hour after the card's last movement (or half-way to the period's end, when that
        -- is nearer), by the demo operator, with its audit row
        INSERT INTO public.card_status_changes (card_id, changed_at, old_status, new_status,
                                                operator, reason)
        SELECT i.card_id, i.last_at + least(interval '1 hour', (v_end - i.last_at) / 2),
               'active', i.status, 'demo',
               CASE i.status WHEN 'inactive' THEN 'never used' WHEN 'blocked' THEN 'reported stolen'
                             ELSE 'reported lost' END
        FROM issued i WHERE i.status <> 'active'
        RETURNING card_id, changed_at, new_status, reason
    ), audited AS (
        INSERT INTO public.audit_log (card_id, at, operator, action, reason, details)
        SELECT ch.card_id, ch.changed_at, 'demo', 'status', ch.reason,
               jsonb_build_object('from', 'active', 'to', ch.new_status)
        FROM changed ch ORDER BY ch.card_id
    ), booked AS (
        -- one row per movement: a recharge or a leg is its own ledger entry (a transfer's
        -- group is its journey's first leg)
        INSERT INTO public.ledger (card_id, entry_id, kind, amount, balance_after, created_at,
                                   boarding_time, point_id, station_id, route_id, service,
                                   fare_id, transfer_group, leg_number)
        SELECT e.card_id, e.entry_id, CASE WHEN e.is_fare THEN 'fare' ELSE 'recharge' END,
               e.amount, e.balance_after, e.at, CASE WHEN e.is_fare THEN e.at END, e.point_id,
               e.station_id, e.route_id, e.service, e.fare_id,
               CASE WHEN e.is_fare THEN coalesce(first_leg.entry_id, e.entry_id) END,
               CASE WHEN e.is_fare THEN e.leg_number END
        FROM entries e
        LEFT JOIN entries first_leg
               ON e.is_fare AND e.leg_number > 1 AND first_leg.is_fare AND first_leg.sub = e.sub
              AND first_leg.leg_number = 1
        RETURNING kind
    )
    SELECT count(*) FILTER (WHERE b.kind = 'recharge'), count(*) FILTER (WHERE b.kind = 'fare')
    INTO v_recharges, v_legs FROM booked b;

    PERFORM setval(pg_get_serial_sequence('public.ledger', 'entry_id'),
                   v_entry_base + v_legs + v_recharges, false);
    RETURN QUERY SELECT v_recharges, v_legs;
END $$;

-- Empties every table that holds cards, people, places or movements (for `db seed
-- --replace`), keeping the rules (localities, fares, transfer rules and windows, limits) and the
-- schema's own bookkeeping. Runs in the caller's transaction, so a replacement that is
-- interrupted leaves the old data in place. Needs the table owner (the migrating role).
CREATE OR REPLACE FUNCTION seed_clear() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_tables text;
BEGIN
    SELECT string_agg(format('public.%I', c.relname), ', ') INTO v_tables
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
      AND c.relname NOT IN ('localities', 'station_names', 'fares', 'transfer_rules',
                            'transfer_windows', 'limits', 'benefit_rules', 'schema_migrations',
                            'entity_counts', 'rollup_state', 'cache_state');
    ALTER TABLE public.ledger DISABLE TRIGGER ledger_no_truncate;
    EXECUTE 'TRUNCATE ' || v_tables || ' RESTART IDENTITY';
    ALTER TABLE public.ledger ENABLE TRIGGER ledger_no_truncate;
    UPDATE public.entity_counts SET users = 0, cards = 0, active_cards = 0;
    UPDATE public.rollup_state SET rolled_until = '-infinity', built_at = NULL;
END $$;
