-- The cache epoch: raised whenever a write could not update Redis after its COMMIT. A
-- process compares it (and each Redis primary's run id) with the marker kept in Redis
-- before its first cache read, and empties the prefix's keys on any difference, so a
-- balance that a failed write-through left behind is never served.
CREATE TABLE cache_state (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch    bigint NOT NULL DEFAULT 1 CHECK (epoch > 0),
    bumped_at timestamptz
);
INSERT INTO cache_state DEFAULT VALUES;
