-- What `recharge health` reads of the jobs, and what the checking jobs record of their runs.
CREATE OR REPLACE FUNCTION job_record(p_job text, p_ok boolean, p_details jsonb)
RETURNS void
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO public.job_runs AS j (job, finished_at, ok, details)
    VALUES (p_job, clock_timestamp(), p_ok, p_details)
    ON CONFLICT (job) DO UPDATE
        SET finished_at = EXCLUDED.finished_at, ok = EXCLUDED.ok, details = EXCLUDED.details;
END $$;

-- The last rollup build and the last verify (NULL columns: never ran).
CREATE OR REPLACE FUNCTION health_jobs()
RETURNS TABLE (rollup_built_at timestamptz, verify_finished_at timestamptz, verify_ok boolean, verify_details jsonb,
               now timestamptz)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN QUERY SELECT
        (SELECT r.built_at FROM public.rollup_state r),
        v.finished_at, v.ok, v.details, clock_timestamp()
    FROM (SELECT 1) one LEFT JOIN public.job_runs v ON v.job = 'verify';
END $$;
