-- An audit trail that says who: next to the declared operator (`--operator`, whatever the
-- person typing chose), every row records the role that logged in to the database. It is
-- session_user, not current_user: inside the SECURITY DEFINER API functions current_user is
-- the owner, session_user stays the authenticated login (SET ROLE does not change it).
-- A column default fills it for every writer (the API functions, the status trigger, the
-- demo load, a statement typed by hand), so no writer can forget it.
--
-- Rows written before this migration keep NULL: nobody recorded who was logged in then, and
-- the role that runs the migration would name someone who did not act. `audit list` shows
-- them as null (empty in a table); every newer row must name its role (the check is NOT
-- VALID, so it holds for new rows only).
ALTER TABLE audit_log ADD COLUMN db_user text;
ALTER TABLE audit_log ALTER COLUMN db_user SET DEFAULT session_user;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_db_user_check CHECK (db_user IS NOT NULL) NOT VALID;

-- `audit list --after ID` and `--follow` read the trail by audit id across cards.
CREATE INDEX audit_log_audit_id_idx ON audit_log (audit_id);

-- A transaction takes its transaction id before it draws an audit id: a statement trigger
-- runs before the statement evaluates its column defaults (an INSERT alone would take the
-- id first). `audit_horizon` relies on it to tell when every audit id drawn so far is final.
CREATE FUNCTION audit_log_take_xid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN NULL;
END $$;
CREATE TRIGGER audit_log_take_xid BEFORE INSERT ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_take_xid();

-- audit_list gains db_user and the cursor (sql/functions/12_lifecycle.sql).
DROP FUNCTION IF EXISTS audit_list(bigint, integer);
