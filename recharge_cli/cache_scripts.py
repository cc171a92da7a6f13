"""The Lua scripts of `cache.Cache`. Each touches the keys of one Cluster slot: one card's
`{card:<id>}` keys, or the prefix's history hash."""

# Before a reader asks PostgreSQL: a fill ticket in the card's slot.
RESERVE = """
redis.call('HSET', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
# Store what a reader got from PostgreSQL, if its ticket survived and no newer version
# was written meanwhile.
FILL = """
if redis.call('HDEL', KEYS[3], ARGV[4]) == 0 then return 0 end
local newest = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) < newest then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
# After committed writes, for each card (KEYS: its ver, balance and trips keys; ARGV after
# the balance and version TTLs: its version, balance and whether a trip was added): record
# the version, write the balance through, and drop the trip list when the write added a
# trip. Older versions arriving late change nothing.
CARDS_WRITTEN = """
for card = 0, #KEYS / 3 - 1 do
    local ver, balance, trips = KEYS[3 * card + 1], KEYS[3 * card + 2], KEYS[3 * card + 3]
    local version = ARGV[3 * card + 3]
    if tonumber(version) > tonumber(redis.call('GET', ver) or '-1') then
        redis.call('SET', ver, version, 'EX', ARGV[2])
        redis.call('SET', balance, ARGV[3 * card + 4], 'EX', ARGV[1])
        if ARGV[3 * card + 5] == '1' then redis.call('DEL', trips) end
    end
end
return 1
"""
# The database's history as far as the cache has seen it (KEYS: the history hash; ARGV:
# the WAL position and the sequences' sum now): 0 when either went back since, else raise
# what was seen and return 1.
HISTORY = """
local seen = redis.call('HMGET', KEYS[1], 'wal', 'history')
if (seen[1] and tonumber(seen[1]) > tonumber(ARGV[1]))
        or (seen[2] and tonumber(seen[2]) > tonumber(ARGV[2])) then return 0 end
redis.call('HSET', KEYS[1], 'wal', ARGV[1], 'history', ARGV[2])
return 1
"""
# Drop a card's cached data (status changes, replacements, `cache evict`): readers refill
# from PostgreSQL; the version stays (raised to the card's), so a late write-through of an
# older version cannot come back. Returns how many data keys were deleted.
CARD_INVALIDATED = """
local newest = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > newest then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return redis.call('DEL', KEYS[2], KEYS[3])
"""
