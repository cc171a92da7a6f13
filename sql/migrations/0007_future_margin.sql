-- How far in the future a boarding time (`trips record --at`) may lie: a clock skew
-- allowance between validators and the database, not a way to pre-charge trips.
ALTER TABLE limits ADD COLUMN max_future_minutes integer NOT NULL DEFAULT 5
    CHECK (max_future_minutes >= 0);
