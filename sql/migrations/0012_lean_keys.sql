-- Leaner foreign-key checks and index upkeep on the movement tables.
--
-- A ledger entry or idempotency key that names a recharge, a trip or a corrected entry
-- is tied to its card by that composite foreign key (card_id, recharge_id | trip_id |
-- corrects_entry_id): the row it references has the same card_id, and that row's own
-- foreign keys tie it to cards. Only the rows that name none of them (a ledger `transfer`
-- entry of a replacement; a `status`, `replace` or `reverse` key) need a foreign key of
-- their own to cards. owner_card_id is their card_id (NULL for every other row, and a
-- NULL column skips its foreign-key check), so each recharge or trip is checked against
-- cards once (by its own table) instead of three times, and every row stays tied to an
-- existing card. (The columns are computed by PostgreSQL: writers do not name them.)
ALTER TABLE ledger
    ADD COLUMN IF NOT EXISTS owner_card_id bigint GENERATED ALWAYS AS (
        CASE WHEN recharge_id IS NULL AND trip_id IS NULL AND corrects_entry_id IS NULL
             THEN card_id END) STORED;
ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_owner_card_id_fkey,
    ADD CONSTRAINT ledger_owner_card_id_fkey FOREIGN KEY (owner_card_id) REFERENCES cards,
    DROP CONSTRAINT IF EXISTS ledger_card_id_fkey;
CREATE INDEX IF NOT EXISTS ledger_owner_card_idx ON ledger (owner_card_id)
    WHERE owner_card_id IS NOT NULL;
ALTER TABLE idempotency_keys
    ADD COLUMN IF NOT EXISTS owner_card_id bigint GENERATED ALWAYS AS (
        CASE WHEN recharge_id IS NULL AND trip_id IS NULL THEN card_id END) STORED;
ALTER TABLE idempotency_keys DROP CONSTRAINT IF EXISTS idempotency_keys_owner_card_id_fkey,
    ADD CONSTRAINT idempotency_keys_owner_card_id_fkey
        FOREIGN KEY (owner_card_id) REFERENCES cards,
    DROP CONSTRAINT IF EXISTS idempotency_keys_card_id_fkey;
CREATE INDEX IF NOT EXISTS idempotency_keys_owner_card_idx ON idempotency_keys (owner_card_id)
    WHERE owner_card_id IS NOT NULL;

-- Indexes on a column that is NULL for most rows only where it is set. A recharge used to
-- add thirteen index entries (and a trip as many); the entries of columns it leaves NULL
-- are gone.
--
-- ledger: one entry per recharge, per trip and per reversed entry stays unique as before
-- (a unique index counts NULLs as distinct, so the partial indexes accept exactly what the
-- full constraints did). Nothing references these columns as a foreign-key target and no
-- ON CONFLICT names them, so plain partial unique indexes replace the constraints.
ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_card_id_recharge_id_key,
    DROP CONSTRAINT IF EXISTS ledger_card_id_trip_id_key,
    DROP CONSTRAINT IF EXISTS ledger_corrects_once;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_recharge_once ON ledger (card_id, recharge_id)
    WHERE recharge_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_trip_once ON ledger (card_id, trip_id)
    WHERE trip_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_corrects_once ON ledger (card_id, corrects_entry_id)
    WHERE corrects_entry_id IS NOT NULL;

-- idempotency_keys: a key names a recharge, a trip, or neither (status, replacement,
-- reversal); each lookup by operation id finds it in the index of that id.
DROP INDEX IF EXISTS idempotency_keys_recharge_idx;
CREATE INDEX idempotency_keys_recharge_idx ON idempotency_keys (card_id, recharge_id)
    WHERE recharge_id IS NOT NULL;
DROP INDEX IF EXISTS idempotency_keys_trip_idx;
CREATE INDEX idempotency_keys_trip_idx ON idempotency_keys (card_id, trip_id)
    WHERE trip_id IS NOT NULL;

-- recharges: the recharges of a point (the point's statistics, the foreign-key check when
-- a point is deleted) are found by point_id = …; a recharge made at no point needs no entry.
DROP INDEX IF EXISTS recharges_point_idx;
CREATE INDEX recharges_point_idx ON recharges (point_id) WHERE point_id IS NOT NULL;
