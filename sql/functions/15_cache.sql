-- The cache epoch (see migrations/0008_cache_epoch.sql).
CREATE OR REPLACE FUNCTION cache_epoch() RETURNS TABLE (epoch bigint)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY SELECT s.epoch FROM public.cache_state s;
END $$;

CREATE OR REPLACE FUNCTION cache_epoch_bump() RETURNS TABLE (epoch bigint)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY UPDATE public.cache_state s SET epoch = s.epoch + 1, bumped_at = now()
                 RETURNING s.epoch;
END $$;
