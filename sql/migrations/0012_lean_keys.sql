-- Leaner index upkeep on the movement tables: an index on a column that is NULL for most
-- rows only where it is set. A recharge used to add thirteen index entries (and a trip as
-- many); the entries of columns it leaves NULL are gone.
--
-- ledger: one entry per recharge, per trip and per reversed entry stays unique as before
-- (a unique index counts NULLs as distinct, so the partial indexes accept exactly what the
-- full constraints did). Nothing references these columns as a foreign-key target and no
-- ON CONFLICT names them, so plain partial unique indexes replace the constraints.
--
-- The single-column card_id foreign keys of ledger and idempotency_keys stay: a ledger
-- `transfer` entry and a `status` key name no recharge, trip or corrected entry, so for
-- them the card_id foreign key is the only one that ties the row to its card.
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
