-- Monthly free trips ("pasajes gratis", see 0020 for the allocation table) as movements of
-- their own. A card holds the trips of one month (benefit_month), how many are left
-- (benefit_trips) and the criterion they were granted for; every change of them is a ledger row carrying the change in `trips` and
-- the month they belong to (trips_month):
--   benefit_grant  +N trips, amount 0: the month's trips loaded (benefits grant);
--   benefit_lapse  -N trips, amount 0: what was left at the month's end;
--   fare           -1 trip, amount 0: a leg paid by a benefit trip (the rider's balance is
--                  untouched; the fare the city pays is the leg's fare_id);
--   transfer       ±N trips: a replacement moves the trips left with the balance.
-- `benefit` names the criterion of a grant, of the legs its trips paid and of the free
-- transfer legs of those journeys (older_adult, disability, poverty).
ALTER TABLE ledger
    ADD COLUMN trips smallint,
    ADD COLUMN trips_month date,
    ADD COLUMN benefit text CHECK (benefit IN ('older_adult', 'disability', 'poverty'));
-- (NULL on a card that never held benefit trips: nothing is added to the row that every
-- movement of such a card writes again)
ALTER TABLE cards
    ADD COLUMN benefit_trips smallint CHECK (benefit_trips >= 0),
    ADD COLUMN benefit_month date CHECK (extract(day FROM benefit_month) = 1),
    ADD COLUMN benefit_criterion text
        CHECK (benefit_criterion IN ('older_adult', 'disability', 'poverty')),
    ADD CONSTRAINT cards_benefit_check
        CHECK (num_nulls(benefit_trips, benefit_month, benefit_criterion) IN (0, 3));

CREATE FUNCTION ledger_row_ok(p_kind text, p_amount bigint, p_key text, p_point_id integer,
                              p_station_id integer, p_service text, p_boarding_time timestamptz,
                              p_fare_id smallint, p_transfer_group bigint,
                              p_leg_number smallint, p_corrects_entry_id bigint,
                              p_counterpart_card_id bigint, p_counterpart_entry_id bigint,
                              p_trips smallint, p_trips_month date, p_benefit text)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (p_trips IS NULL) = (p_trips_month IS NULL)
        AND (p_trips_month IS NULL OR extract(day FROM p_trips_month) = 1)
        AND CASE p_kind
            WHEN 'benefit_grant' THEN p_amount = 0 AND p_trips > 0 AND p_benefit IS NOT NULL
                AND num_nulls(p_point_id, p_station_id, p_service, p_boarding_time, p_fare_id,
                              p_transfer_group, p_leg_number, p_corrects_entry_id,
                              p_counterpart_card_id, p_counterpart_entry_id) = 10
            WHEN 'benefit_lapse' THEN p_amount = 0 AND p_trips < 0 AND p_benefit IS NULL
                AND num_nulls(p_point_id, p_station_id, p_service, p_boarding_time, p_fare_id,
                              p_transfer_group, p_leg_number, p_corrects_entry_id,
                              p_counterpart_card_id, p_counterpart_entry_id) = 10
            WHEN 'fare' THEN (p_trips IS NULL AND (p_benefit IS NULL OR p_amount = 0))
                OR (p_trips = -1 AND p_amount = 0 AND p_benefit IS NOT NULL)
            WHEN 'transfer' THEN p_benefit IS NULL
            ELSE num_nulls(p_trips, p_benefit) = 2 END
        -- (the columns a benefit row leaves empty are those of a recharge without a point)
        AND public.ledger_row_is_valid(
            CASE WHEN p_kind LIKE 'benefit%' THEN 'recharge' ELSE p_kind END,
            CASE WHEN p_kind LIKE 'benefit%' THEN 1 ELSE p_amount END, p_key, p_point_id,
            p_station_id, p_service, p_boarding_time, p_fare_id, p_transfer_group, p_leg_number,
            p_corrects_entry_id, p_counterpart_card_id, p_counterpart_entry_id);
END $$;

-- Every row already holds the rules of 0019's check (which this one includes), so the new
-- check is not re-validated over the whole table (NOT VALID): it holds for every row
-- written from here on.
ALTER TABLE ledger DROP CONSTRAINT ledger_row_check,
    ADD CONSTRAINT ledger_row_check CHECK (ledger_row_ok(
        kind, amount, idempotency_key, point_id, station_id, service, boarding_time, fare_id,
        transfer_group, leg_number, corrects_entry_id, counterpart_card_id,
        counterpart_entry_id, trips, trips_month, benefit)) NOT VALID;

-- Legs by beneficiary (0 general, 1 older adult, 2 disability, 3 poverty) and the fares the
-- city paid through benefit trips, rolled up like the rest.
ALTER TABLE daily_trips DROP CONSTRAINT daily_trips_dimension_check,
    ADD CONSTRAINT daily_trips_dimension_check
        CHECK (dimension IN ('hour', 'locality', 'route', 'beneficiary')),
    ADD COLUMN benefit_fares bigint NOT NULL DEFAULT 0 CHECK (benefit_fares >= 0);
TRUNCATE daily_revenue, daily_trips, daily_riders, rollup_dirty;
UPDATE rollup_state SET rolled_until = '-infinity', built_at = NULL;

-- The trips view shows who paid a leg (paid_by: balance, benefit, or transfer when there was
-- nothing to pay) and the beneficiary criterion of a leg a benefit trip paid.
CREATE OR REPLACE VIEW trips AS
    SELECT l.card_id, l.entry_id AS trip_id, l.station_id, l.route_id, l.service,
           l.boarding_time, l.fare_id, -l.amount AS fare_charged, l.leg_number > 1 AS is_transfer,
           l.transfer_group, l.leg_number, l.balance_after, l.created_at AS recorded_at,
           l.idempotency_key,
           CASE WHEN l.trips = -1 THEN 'benefit' WHEN l.amount = 0 THEN 'transfer'
                ELSE 'balance' END AS paid_by,
           l.benefit
    FROM ledger l WHERE l.kind = 'fare';
