-- Current counts of users and cards for `stats users count`, kept by triggers so the
-- statistic reads one row instead of scanning users and cards. Card issuance and status
-- changes are rare next to recharges and trips; a recharge or trip touches no counter
-- (the status trigger fires only when status actually changes).

CREATE TABLE entity_counts (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    users        bigint NOT NULL CHECK (users >= 0),
    cards        bigint NOT NULL CHECK (cards >= 0),
    active_cards bigint NOT NULL CHECK (active_cards >= 0)
);
INSERT INTO entity_counts
SELECT true, (SELECT count(*) FROM users), (SELECT count(*) FROM cards),
       (SELECT count(*) FROM cards WHERE status = 'active');

CREATE FUNCTION count_users() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE public.entity_counts SET users = users + (SELECT count(*) FROM new_rows);
    ELSE
        UPDATE public.entity_counts SET users = users - (SELECT count(*) FROM old_rows);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION count_cards() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE public.entity_counts e
        SET cards = e.cards + n.total, active_cards = e.active_cards + n.active
        FROM (SELECT count(*) AS total, count(*) FILTER (WHERE status = 'active') AS active
              FROM new_rows) n;
    ELSE
        UPDATE public.entity_counts e
        SET cards = e.cards - o.total, active_cards = e.active_cards - o.active
        FROM (SELECT count(*) AS total, count(*) FILTER (WHERE status = 'active') AS active
              FROM old_rows) o;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION count_card_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE public.entity_counts
    SET active_cards = active_cards + (NEW.status = 'active')::integer
                                    - (OLD.status = 'active')::integer;
    RETURN NULL;
END $$;

CREATE TRIGGER users_count_insert AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_users();
CREATE TRIGGER users_count_delete AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_users();
CREATE TRIGGER cards_count_insert AFTER INSERT ON cards
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_cards();
CREATE TRIGGER cards_count_delete AFTER DELETE ON cards
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_cards();
CREATE TRIGGER cards_count_status AFTER UPDATE OF status ON cards
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION count_card_status();

DROP FUNCTION IF EXISTS stats_users_count();
