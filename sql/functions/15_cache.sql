-- The cache epoch (see migrations/0008_cache_epoch.sql).
DROP FUNCTION IF EXISTS cache_epoch();  -- replaced by cache_identity()

CREATE OR REPLACE FUNCTION cache_epoch_bump() RETURNS TABLE (epoch bigint)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY UPDATE public.cache_state s SET epoch = s.epoch + 1, bumped_at = now()
                 RETURNING s.epoch;
END $$;

-- The data was replaced (`db seed`, `db migrate`): every cached copy and card version of
-- it must go.
CREATE OR REPLACE FUNCTION cache_data_replaced() RETURNS TABLE (epoch bigint, generation bigint)
LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY UPDATE public.cache_state s
                 SET epoch = s.epoch + 1, generation = s.generation + 1, bumped_at = now()
                 RETURNING s.epoch, s.generation;
END $$;

-- Which database, and how far along its history, the cache is caching. A process compares
-- the first five columns (equal or the prefix is emptied) and the last two (never lower
-- than the highest the cache has seen, or the prefix is emptied) with what Redis keeps:
-- - generation: the data replaced by a seed or a migration;
-- - system_identifier: a new cluster (initdb, a restore from pg_dump into a new server);
-- - database_oid: the database dropped and recreated, or a dump restored into a new one;
-- - timeline: a promoted replica, a restore to an earlier point in time;
-- - wal_position (bytes of WAL flushed): a base-backup restore, a failover to a lagging
--   replica, anything that made the server's history shorter;
-- - history (the sum of the schema's sequences): a dump restored into the same database,
--   whose WAL goes on but whose movements went back.
-- A false alarm costs one emptied prefix; a missed one would serve a stale balance.
CREATE OR REPLACE FUNCTION cache_identity()
RETURNS TABLE (epoch bigint, generation bigint, system_identifier bigint, database_oid bigint, timeline bigint,
               wal_position bigint, history numeric)
LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_recovering boolean := pg_is_in_recovery();
    v_lsn pg_lsn := CASE WHEN v_recovering THEN pg_last_wal_replay_lsn()
                         ELSE pg_current_wal_flush_lsn() END;
BEGIN
    RETURN QUERY SELECT
        s.epoch, s.generation,
        (SELECT c.system_identifier FROM pg_control_system() c),
        (SELECT d.oid::bigint FROM pg_database d WHERE d.datname = current_database()),
        CASE WHEN v_recovering THEN (SELECT c.timeline_id::bigint FROM pg_control_checkpoint() c)
             ELSE ('x' || substr(pg_walfile_name(v_lsn), 1, 8))::bit(32)::bigint END,
        (v_lsn - '0/0'::pg_lsn)::bigint,
        (SELECT coalesce(sum(pg_sequence_last_value(q.oid)), 0)
         FROM pg_class q JOIN pg_namespace n ON n.oid = q.relnamespace
         WHERE q.relkind = 'S' AND n.nspname = 'public')
    FROM public.cache_state s;
END $$;
