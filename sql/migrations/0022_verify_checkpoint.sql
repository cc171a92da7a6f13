-- Incremental verify: what the last clean run covered. Entries up to entry_id were checked
-- (and every one of them had committed, or never will); the totals are the sums of their
-- amounts by kind, so the next run checks the totals from the new entries alone.
CREATE TABLE verify_checkpoint (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    entry_id    bigint NOT NULL,
    cards_up_to bigint NOT NULL,   -- cards up to this id were checked
    recharged   bigint NOT NULL,
    fares       bigint NOT NULL,
    reversed    bigint NOT NULL,
    transferred bigint NOT NULL,
    full_run    boolean NOT NULL,  -- the run that set it checked everything
    verified_at timestamptz NOT NULL
);
