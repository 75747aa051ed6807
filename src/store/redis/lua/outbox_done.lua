-- Removes outbox entries the bus has acknowledged; an emptied outbox is deleted (so idle slots
-- hold no key). Not waited for: an entry lost in a failover is only published once more.
-- KEYS: the slot's outbox
-- ARGV: stream ids
-- Reply: how many entries were removed.
local removed = redis.call('XDEL', KEYS[1], unpack(ARGV))
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return removed
