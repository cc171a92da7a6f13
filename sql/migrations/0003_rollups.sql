-- Daily rollups: statistics read everything before rollup_state.rolled_until from these
-- small tables and scan the base tables only for the rest (the last ~2 hours and days
-- marked dirty).
-- Built by rollup_build() (`recharge db rollup`, and after `db seed`); see
-- sql/functions/25_rollups.sql. Days are dates in rollup_state.time_zone.

CREATE TABLE rollup_state (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    time_zone    text NOT NULL DEFAULT 'UTC',
    -- everything before this instant is rolled up (the last day may be partial), except
    -- dirty days
    rolled_until timestamptz NOT NULL DEFAULT '-infinity',
    built_at     timestamptz
);
INSERT INTO rollup_state DEFAULT VALUES;

-- Days whose base rows changed after (or while) they were rolled up: a backdated trip,
-- or any row more than 15 minutes old when written. Statistics scan these days live.
CREATE TABLE rollup_dirty (
    day       date PRIMARY KEY,
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- Recharges per day and recharge-point locality (NULL: no point).
CREATE TABLE daily_revenue (
    day         date NOT NULL,
    locality_id smallint,
    recharged   bigint NOT NULL CHECK (recharged >= 0),
    recharges   bigint NOT NULL CHECK (recharges > 0)
);
CREATE INDEX daily_revenue_day_idx ON daily_revenue (day);

-- Trip legs per day along one dimension: hour of day (0-23), station locality, or
-- route (NULL: boarding without a route).
CREATE TABLE daily_trips (
    day       date NOT NULL,
    dimension text NOT NULL CHECK (dimension IN ('hour', 'locality', 'route')),
    key       integer,
    legs      bigint NOT NULL CHECK (legs > 0),
    journeys  bigint NOT NULL CHECK (journeys >= 0),
    transfers bigint NOT NULL CHECK (transfers >= 0),
    fares     bigint NOT NULL CHECK (fares >= 0),
    CHECK (legs = journeys + transfers)
);
CREATE INDEX daily_trips_day_idx ON daily_trips (dimension, day);

-- Who rode each day, as bitmaps: bit (id % 4096) of chunk (id / 4096) is set when that
-- user (or card) boarded. Distinct riders over any window = bit_count of the OR.
CREATE TABLE daily_riders (
    day     date NOT NULL,
    kind    text NOT NULL CHECK (kind IN ('user', 'card')),
    chunk   bigint NOT NULL,
    members bit varying(4096) NOT NULL,
    PRIMARY KEY (day, kind, chunk)
);

-- Mark the days of old rows dirty. Statement-level with a transition table: one call per
-- INSERT statement, however many rows; a current write (the normal case) inserts nothing.
CREATE FUNCTION mark_dirty_days() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'trips' THEN
        INSERT INTO public.rollup_dirty (day)
        SELECT DISTINCT (n.boarding_time AT TIME ZONE s.time_zone)::date
        FROM new_rows n CROSS JOIN public.rollup_state s
        WHERE n.boarding_time < now() - interval '15 minutes'
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO public.rollup_dirty (day)
        SELECT DISTINCT (n.recharged_at AT TIME ZONE s.time_zone)::date
        FROM new_rows n CROSS JOIN public.rollup_state s
        WHERE n.recharged_at < now() - interval '15 minutes'
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trips_mark_dirty AFTER INSERT ON trips
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_days();
CREATE TRIGGER recharges_mark_dirty AFTER INSERT ON recharges
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mark_dirty_days();
