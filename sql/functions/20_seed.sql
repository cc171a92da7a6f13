-- Demo data generated server-side and set-based. Every pseudo-random choice is a hash
-- of (seed, stream, row), so the same seed and end date give the same data.

CREATE OR REPLACE FUNCTION seed_rand(p_seed bigint, p_stream integer, p_row bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashint8extended(p_row * 1000003 + p_stream, p_seed) & 9223372036854775807
$$;

-- Stations, routes, recharge points, users and cards (no movements yet).
CREATE OR REPLACE FUNCTION seed_catalog(p_scale numeric, p_seed bigint, p_end date)
RETURNS TABLE (users bigint, cards bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_users bigint := greatest(1, round(25000 * p_scale));
    v_cards bigint := greatest(1, round(24000 * p_scale));
    v_start timestamptz := p_end - interval '90 days';
BEGIN
    IF EXISTS (SELECT 1 FROM public.cards) OR EXISTS (SELECT 1 FROM public.stations) THEN
        RAISE EXCEPTION 'the database already holds demo or live data; seed an empty database'
            USING ERRCODE = 'RC004';
    END IF;
    INSERT INTO public.stations (station_id, name, station_type, locality_id)
    SELECT i,
           CASE WHEN i <= 9 THEN 'Portal ' || i
                WHEN i <= 149 THEN 'Estación troncal ' || i
                WHEN i <= 153 THEN 'Estación cable ' || i
                ELSE 'Paradero zonal ' || i END,
           CASE WHEN i <= 9 THEN 'PORTAL'
                WHEN i <= 149 THEN CASE WHEN i % 3 = 0 THEN 'TRONCAL_INTERMEDIA'
                                        ELSE 'TRONCAL_SENCILLA' END
                WHEN i <= 153 THEN 'CABLE'
                ELSE 'ZONAL_PARADERO' END,
           1 + public.seed_rand(p_seed, 1, i) % 13
    FROM generate_series(1, 7700) AS i;

    INSERT INTO public.routes (route_id, code, route_type)
    SELECT i,
           CASE WHEN i <= 120 THEN 'T' WHEN i <= 220 THEN 'A' WHEN i <= 558 THEN 'Z' ELSE 'C' END
               || lpad(i::text, 3, '0'),
           CASE WHEN i <= 120 THEN 'TRONCAL' WHEN i <= 220 THEN 'ALIMENTADORA'
                WHEN i <= 558 THEN 'ZONAL_UCE' ELSE 'CABLE' END
    FROM generate_series(1, 560) AS i;

    INSERT INTO public.recharge_points (point_id, name, station_id, locality_id)
    SELECT i,
           CASE WHEN i <= 153 THEN 'Taquilla estación ' || i ELSE 'Punto externo ' || i END,
           CASE WHEN i <= 153 THEN i END,
           1 + public.seed_rand(p_seed, 2, i) % 13
    FROM generate_series(1, 400) AS i;

    INSERT INTO public.users (user_id, document, full_name, email, registered_at)
    SELECT i, 'CC' || (10000000 + i),
           (ARRAY['Ana', 'Luis', 'María', 'Carlos', 'Laura', 'Andrés', 'Sofía', 'Jorge',
                  'Valentina', 'Diego'])[1 + public.seed_rand(p_seed, 3, i) % 10]
               || ' ' ||
           (ARRAY['Rodríguez', 'Gómez', 'González', 'Martínez', 'García', 'López', 'Hernández',
                  'Sánchez', 'Ramírez', 'Torres'])[1 + public.seed_rand(p_seed, 4, i) % 10],
           'user' || i || '@example.com',
           v_start + make_interval(secs => public.seed_rand(p_seed, 5, i) % (3 * 365 * 86400))
    FROM generate_series(1, v_users) AS i;

    -- One card in ten is anonymous; card 789 (the documented example) is personalised and
    -- active. The history of the other statuses is written after each card's activity, in
    -- seed_activity.
    INSERT INTO public.cards (card_id, user_id, status, balance, version, issued_at)
    SELECT i, CASE WHEN i = 789 OR public.seed_rand(p_seed, 8, i) % 10 <> 0
                   THEN 1 + public.seed_rand(p_seed, 6, i) % v_users END,
           CASE WHEN i = 789 OR r < 880 THEN 'active' WHEN r < 940 THEN 'inactive'
                WHEN r < 975 THEN 'blocked' ELSE 'lost' END,
           0, 0, v_start - interval '1 day'
    FROM (SELECT i, public.seed_rand(p_seed, 7, i) % 1000 AS r
          FROM generate_series(1, v_cards) AS i) AS c;
    PERFORM setval('public.card_id_seq', v_cards);
    PERFORM setval('public.user_id_seq', v_users);
    RETURN QUERY SELECT v_users, v_cards;
END $$;

-- Recharges over three years and one week of trip legs for cards p_from..p_to, their
-- ledger entries, and the cards' balances. Each card's first recharge, made before the
-- trip week, covers that week's fares, so no balance ever leaves the limits.
CREATE OR REPLACE FUNCTION seed_activity(p_from bigint, p_to bigint, p_seed bigint, p_end date)
RETURNS TABLE (recharges bigint, legs bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_start date := p_end - 90;
    v_legs bigint;
    v_recharges bigint;
    v_base bigint;
BEGIN
    -- the whole load is one transaction: the previous batch's scratch tables still exist
    DROP TABLE IF EXISTS seed_legs, seed_trips, seed_recharges, seed_ledger, seed_recharge_ids,
        seed_status;
    CREATE TEMP TABLE seed_legs ON COMMIT DROP AS
    WITH days AS (
        SELECT d, w, sum(w) OVER (ORDER BY d) - w AS lo, sum(w) OVER (ORDER BY d) AS hi,
               sum(w) OVER () AS total, extract(isodow FROM v_start + d) >= 6 AS weekend
        FROM (SELECT d, CASE extract(isodow FROM v_start + d)
                            WHEN 6 THEN 11 WHEN 7 THEN 8 ELSE 16 END AS w
              FROM generate_series(0, 89) AS d) AS x
    ), hours AS (
        SELECT weekend, h, sum(w) OVER (PARTITION BY weekend ORDER BY h) - w AS lo,
               sum(w) OVER (PARTITION BY weekend ORDER BY h) AS hi,
               sum(w) OVER (PARTITION BY weekend) AS total
        FROM (SELECT false AS weekend, h - 1 AS h, w
              FROM unnest(ARRAY[1, 1, 1, 1, 4, 14, 22, 20, 11, 7, 6, 6, 7, 7, 6, 7, 11, 19,
                                 17, 10, 6, 4, 3, 2]) WITH ORDINALITY AS u(w, h)
              UNION ALL
              SELECT true, h - 1, w
              FROM unnest(ARRAY[1, 1, 1, 1, 2, 4, 6, 8, 10, 11, 12, 12, 12, 12, 11, 11, 10, 10,
                                 9, 8, 6, 4, 3, 2]) WITH ORDINALITY AS u(w, h)) AS y
    ), journeys AS (
        SELECT c.card_id, j AS journey_no, c.card_id * 64 + j AS jid,
               c.user_id IS NOT NULL AS personalised
        FROM public.cards c
        CROSS JOIN LATERAL generate_series(
            1, 1 + (public.seed_rand(p_seed, 10, c.card_id) % 17)::integer
               + CASE WHEN public.seed_rand(p_seed, 11, c.card_id) % 100 < 23 THEN 1 ELSE 0 END
        ) AS j
        WHERE c.card_id BETWEEN p_from AND p_to AND c.status <> 'inactive'
    ), timed AS (
        SELECT jn.card_id, jn.jid, jn.personalised,
               v_start::timestamptz + make_interval(days => dd.d, hours => hh.h::integer,
                                            secs => public.seed_rand(p_seed, 14, jn.jid) % 3600)
                   AS t0,
               public.seed_rand(p_seed, 15, jn.jid) % 1000 AS transfer_draw,
               CASE WHEN public.seed_rand(p_seed, 16, jn.jid) % 100 < 40 THEN 'TRONCAL'
                    WHEN public.seed_rand(p_seed, 16, jn.jid) % 100 < 80 THEN 'ZONAL_UCE'
                    WHEN public.seed_rand(p_seed, 16, jn.jid) % 100 < 98 THEN 'ALIMENTADORA'
                    ELSE 'CABLE' END AS s1,
               public.seed_rand(p_seed, 17, jn.jid) % 2 AS branch
        FROM journeys jn
        JOIN days dd ON public.seed_rand(p_seed, 12, jn.jid) % dd.total >= dd.lo
                    AND public.seed_rand(p_seed, 12, jn.jid) % dd.total < dd.hi
        JOIN hours hh ON hh.weekend = dd.weekend
                     AND public.seed_rand(p_seed, 13, jn.jid) % hh.total >= hh.lo
                     AND public.seed_rand(p_seed, 13, jn.jid) % hh.total < hh.hi
    ), chained AS (
        SELECT tm.*, s2,
               CASE WHEN s2 = 'TRONCAL' THEN CASE WHEN tm.branch = 0 THEN 'ZONAL_UCE'
                                                   ELSE 'ALIMENTADORA' END
                    ELSE 'TRONCAL' END AS s3
        FROM timed tm
        CROSS JOIN LATERAL (SELECT CASE WHEN tm.s1 = 'TRONCAL'
                                        THEN CASE WHEN tm.branch = 0 THEN 'ZONAL_UCE'
                                                  ELSE 'ALIMENTADORA' END
                                        ELSE 'TRONCAL' END AS s2) AS x
    )
    SELECT ch.card_id, ch.jid, leg::smallint AS leg_number,
           CASE leg WHEN 1 THEN ch.t0
                    WHEN 2 THEN ch.t0 + make_interval(mins => 5 + (public.seed_rand(p_seed, 18, ch.jid) % 45)::integer)
                    ELSE ch.t0 + make_interval(mins => 55 + (public.seed_rand(p_seed, 19, ch.jid) % 35)::integer)
           END AS boarding_time,
           (ARRAY[ch.s1, ch.s2, ch.s3])[leg] AS service,
           CASE leg WHEN 1 THEN NULL ELSE (ARRAY[ch.s1, ch.s2, ch.s3])[leg - 1] END AS prev_service,
           public.seed_rand(p_seed, 20 + leg, ch.jid) AS draw
    FROM chained ch
    CROSS JOIN LATERAL generate_series(
        1, CASE WHEN NOT ch.personalised THEN 1  -- transfers are for personalised cards
                WHEN ch.transfer_draw < 180 THEN 2 WHEN ch.transfer_draw < 200 THEN 3 ELSE 1 END
    ) AS leg;

    -- Stations, routes and fares per leg; ids in time order per card.
    CREATE TEMP TABLE seed_trips ON COMMIT DROP AS
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
    FROM seed_legs l
    LEFT JOIN public.transfer_rules tr
           ON tr.from_service = l.prev_service AND tr.to_service = l.service
    JOIN public.fares f
      ON f.code = coalesce(tr.fare_code, CASE l.service WHEN 'CABLE' THEN 'CABLE'
                                                        ELSE 'STANDARD' END)
     AND f.valid_from <= l.boarding_time
     AND (f.valid_to IS NULL OR l.boarding_time < f.valid_to);

    SELECT count(*) INTO v_legs FROM seed_trips;
    v_base := nextval(pg_get_serial_sequence('public.trips', 'trip_id'));
    PERFORM setval(pg_get_serial_sequence('public.trips', 'trip_id'), v_base + v_legs);
    ALTER TABLE seed_trips ADD COLUMN trip_id bigint;
    UPDATE seed_trips st SET trip_id = v_base + o.n - 1
    FROM (SELECT card_id, jid, leg_number,
                 row_number() OVER (ORDER BY card_id, boarding_time, jid, leg_number) AS n
          FROM seed_trips) AS o
    WHERE o.card_id = st.card_id AND o.jid = st.jid AND o.leg_number = st.leg_number;

    -- Recharges: 1-5 per card over the same 90 days; the first, in the hours before the
    -- period's first day, also covers the period's fares.
    CREATE TEMP TABLE seed_recharges ON COMMIT DROP AS
    WITH fares_due AS (
        SELECT card_id, sum(fare) AS due FROM seed_trips GROUP BY card_id
    ), draws AS (
        SELECT c.card_id, k, coalesce(fd.due, 0) AS due,
               c.card_id * 8 + k AS rid_key
        FROM public.cards c
        LEFT JOIN fares_due fd ON fd.card_id = c.card_id
        CROSS JOIN LATERAL generate_series(
            1, 1 + (public.seed_rand(p_seed, 30, c.card_id) % 5)::integer) AS k
        WHERE c.card_id BETWEEN p_from AND p_to AND c.status <> 'inactive'
    )
    SELECT d.card_id,
           CASE WHEN d.k = 1
                THEN greatest(base.amount, ((d.due + 999) / 1000) * 1000)
                ELSE base.amount END AS amount,
           CASE WHEN d.k = 1
                THEN v_start - make_interval(secs => 1 + public.seed_rand(p_seed, 32, d.rid_key)
                                                          % (6 * 3600))
                ELSE v_start + make_interval(secs => public.seed_rand(p_seed, 32, d.rid_key)
                                                      % (90 * 86400)) END AS recharged_at,
           (1 + public.seed_rand(p_seed, 33, d.rid_key) % 400)::integer AS point_id,
           d.k
    FROM draws d
    CROSS JOIN LATERAL (SELECT (5 + public.seed_rand(p_seed, 31, d.rid_key) % 46) * 1000
                               AS amount) AS base;
    SELECT count(*) INTO v_recharges FROM seed_recharges;

    -- The ledger in time order per card, with running balances.
    CREATE TEMP TABLE seed_ledger ON COMMIT DROP AS
    SELECT m.*, sum(m.amount) OVER (PARTITION BY m.card_id ORDER BY m.at, m.ord
                                    ROWS UNBOUNDED PRECEDING) AS balance_after
    FROM (SELECT card_id, 'recharge' AS kind, amount, k::bigint AS ord, recharged_at AS at,
                 NULL::bigint AS trip_id, k AS recharge_k
          FROM seed_recharges
          UNION ALL
          SELECT card_id, 'fare', -fare, trip_id, boarding_time, trip_id, NULL
          FROM seed_trips) AS m;

    v_base := nextval(pg_get_serial_sequence('public.recharges', 'recharge_id'));
    PERFORM setval(pg_get_serial_sequence('public.recharges', 'recharge_id'),
                   v_base + v_recharges);
    CREATE TEMP TABLE seed_recharge_ids ON COMMIT DROP AS
    SELECT card_id, recharge_k,
           v_base + row_number() OVER (ORDER BY card_id, at, recharge_k) - 1 AS recharge_id
    FROM seed_ledger WHERE kind = 'recharge';

    INSERT INTO public.recharges (card_id, recharge_id, amount, point_id, recharged_at,
                                  balance_after)
    SELECT sr.card_id, ri.recharge_id, sr.amount, sr.point_id, sr.recharged_at, sl.balance_after
    FROM seed_recharges sr
    JOIN seed_recharge_ids ri ON ri.card_id = sr.card_id AND ri.recharge_k = sr.k
    JOIN seed_ledger sl ON sl.card_id = sr.card_id AND sl.kind = 'recharge'
                       AND sl.recharge_k = sr.k;

    INSERT INTO public.trips (card_id, trip_id, station_id, route_id, service, boarding_time,
                              fare_id, fare_charged, is_transfer, transfer_group, leg_number,
                              balance_after)
    SELECT st.card_id, st.trip_id, st.station_id, st.route_id, st.service, st.boarding_time,
           st.fare_id, st.fare, st.leg_number > 1, first_leg.trip_id, st.leg_number,
           sl.balance_after
    FROM seed_trips st
    JOIN seed_trips first_leg ON first_leg.card_id = st.card_id AND first_leg.jid = st.jid
                             AND first_leg.leg_number = 1
    JOIN seed_ledger sl ON sl.card_id = st.card_id AND sl.trip_id = st.trip_id;

    INSERT INTO public.ledger (card_id, kind, amount, recharge_id, trip_id, created_at,
                               balance_after)
    SELECT sl.card_id, sl.kind, sl.amount, ri.recharge_id, sl.trip_id, sl.at, sl.balance_after
    FROM seed_ledger sl
    LEFT JOIN seed_recharge_ids ri ON ri.card_id = sl.card_id AND ri.recharge_k = sl.recharge_k
    ORDER BY sl.card_id, sl.at, sl.ord;

    UPDATE public.cards c
    SET balance = s.balance, version = s.entries, last_movement_at = s.last_at
    FROM (SELECT card_id, sum(amount) AS balance, count(*) AS entries, max(at) AS last_at
          FROM seed_ledger GROUP BY card_id) AS s
    WHERE s.card_id = c.card_id;

    -- The history of the final statuses: inactive (never used), blocked and lost, each an
    -- hour after the card's last movement, by the demo operator, with its audit row.
    CREATE TEMP TABLE seed_status ON COMMIT DROP AS
    SELECT c.card_id, c.status,
           coalesce(c.last_movement_at, c.issued_at) + interval '1 hour' AS changed_at
    FROM public.cards c
    WHERE c.card_id BETWEEN p_from AND p_to AND c.status <> 'active';
    INSERT INTO public.card_status_changes (card_id, changed_at, old_status, new_status, operator,
                                            reason)
    SELECT card_id, changed_at, 'active', status, 'demo',
           CASE status WHEN 'inactive' THEN 'never used' WHEN 'blocked' THEN 'reported stolen'
                       ELSE 'reported lost' END
    FROM seed_status;
    INSERT INTO public.audit_log (card_id, at, operator, action, reason, details)
    SELECT card_id, changed_at, 'demo', 'status',
           CASE status WHEN 'inactive' THEN 'never used' WHEN 'blocked' THEN 'reported stolen'
                       ELSE 'reported lost' END,
           jsonb_build_object('from', 'active', 'to', status)
    FROM seed_status;

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
      AND c.relname NOT IN ('localities', 'fares', 'transfer_rules', 'transfer_windows',
                            'limits', 'schema_migrations', 'entity_counts', 'rollup_state',
                            'cache_state');
    ALTER TABLE public.ledger DISABLE TRIGGER ledger_no_truncate;
    EXECUTE 'TRUNCATE ' || v_tables || ' RESTART IDENTITY';
    ALTER TABLE public.ledger ENABLE TRIGGER ledger_no_truncate;
    UPDATE public.entity_counts SET users = 0, cards = 0, active_cards = 0;
    UPDATE public.rollup_state SET rolled_until = '-infinity', built_at = NULL;
END $$;
