-- Least privilege. The role that runs migrations owns every table and function. The
-- application role `recharge_app` (NOLOGIN: grant it to the login role your jobs use) may
-- only EXECUTE the API functions, which are SECURITY DEFINER with a fixed search_path;
-- it has no privilege on any table (it can read schema_migrations for `db status`).
-- Creating the role needs CREATEROLE; a DBA may create it beforehand instead.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recharge_app') THEN
        CREATE ROLE recharge_app NOLOGIN;
    END IF;
END $$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;  -- functions created later
GRANT USAGE ON SCHEMA public TO recharge_app;
GRANT SELECT ON schema_migrations TO recharge_app;
