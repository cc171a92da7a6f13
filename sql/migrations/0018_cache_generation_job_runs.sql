-- The data generation: raised when the data itself is replaced (a seed, a migration), so
-- the cache empties its card versions too (the new data's versions may restart lower);
-- the epoch alone (a failed write-through) keeps them.
ALTER TABLE cache_state ADD COLUMN generation bigint NOT NULL DEFAULT 1 CHECK (generation > 0);

-- The last run of each checking job, for `recharge health`: when it finished and whether
-- it found the data sound. One row per job, replaced by every run.
CREATE TABLE job_runs (
    job         text PRIMARY KEY CHECK (job IN ('verify')),
    finished_at timestamptz NOT NULL,
    ok          boolean NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'
);
