-- Reference data the rules depend on: localities, fares, transfer rules, limits.

INSERT INTO localities (locality_id, name) VALUES
    (1, 'Usaquén'), (2, 'Chapinero'), (3, 'Santa Fe'), (4, 'San Cristóbal'), (5, 'Usme'),
    (6, 'Tunjuelito'), (7, 'Bosa'), (8, 'Kennedy'), (9, 'Fontibón'), (10, 'Engativá'),
    (11, 'Suba'), (12, 'Barrios Unidos'), (13, 'Teusaquillo');

INSERT INTO fares (fare_id, code, fare_type, amount, valid_from) VALUES
    (1, 'STANDARD', 'STANDARD', 2950, '2020-01-01 00:00:00-05'),
    (2, 'TRANSFER_FREE', 'TRANSFER', 0, '2020-01-01 00:00:00-05'),
    (3, 'TRANSFER', 'TRANSFER', 200, '2020-01-01 00:00:00-05'),
    (4, 'CABLE', 'CABLE', 2950, '2020-01-01 00:00:00-05');

-- Transfers to or from a feeder (ALIMENTADORA) are free; every other transfer costs
-- the TRANSFER fare.
INSERT INTO transfer_rules (from_service, to_service, fare_code)
SELECT f.s, t.s,
       CASE WHEN 'ALIMENTADORA' IN (f.s, t.s) THEN 'TRANSFER_FREE' ELSE 'TRANSFER' END
FROM unnest(ARRAY['TRONCAL', 'ZONAL_UCE', 'ALIMENTADORA', 'CABLE']) AS f(s)
CROSS JOIN unnest(ARRAY['TRONCAL', 'ZONAL_UCE', 'ALIMENTADORA', 'CABLE']) AS t(s);

INSERT INTO limits (min_recharge, max_recharge, max_balance, credit_allowance,
                    transfer_window_minutes, max_transfers)
VALUES (1000, 200000, 500000, 5900, 95, 2);
