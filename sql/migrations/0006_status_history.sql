-- Card status changes (blocked, lost, …) with their time, for the daily report. Written
-- by the status trigger of 0004, which fires only when a card's status really changes.
CREATE TABLE card_status_changes (
    card_id    bigint NOT NULL REFERENCES cards,
    changed_at timestamptz NOT NULL DEFAULT now(),
    old_status text NOT NULL,
    new_status text NOT NULL
);
CREATE INDEX card_status_changes_time_idx ON card_status_changes (changed_at);

CREATE OR REPLACE FUNCTION count_card_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE public.entity_counts
    SET active_cards = active_cards + (NEW.status = 'active')::integer
                                    - (OLD.status = 'active')::integer;
    INSERT INTO public.card_status_changes (card_id, old_status, new_status)
    VALUES (NEW.card_id, OLD.status, NEW.status);
    RETURN NULL;
END $$;

DROP FUNCTION IF EXISTS report_card_status();  -- now takes the report's day
