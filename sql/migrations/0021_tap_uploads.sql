-- Validator uploads (`trips record --from-csv`): the file's taps are staged here, then
-- applied card by card in boarding-time order, so a card's taps are charged in the order
-- they were made wherever they lie in the file. Unlogged: staged rows are a copy of the
-- file being applied (a crash empties the table; rerunning the file stages it again, and
-- its applied taps replay by their keys).
CREATE UNLOGGED TABLE tap_uploads (
    upload_id       text NOT NULL,
    card_id         bigint NOT NULL,
    boarding_time   timestamptz NOT NULL,
    line            integer NOT NULL,
    station_id      integer NOT NULL,
    route_id        integer,
    idempotency_key text NOT NULL,
    staged_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (upload_id, card_id, boarding_time, line)
);
