-- The last run of each checking job, for `recharge health`: when it finished and whether
-- it found the data sound. One row per job, replaced by every run.
CREATE TABLE job_runs (
    job         text PRIMARY KEY CHECK (job IN ('verify')),
    finished_at timestamptz NOT NULL,
    ok          boolean NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'
);
