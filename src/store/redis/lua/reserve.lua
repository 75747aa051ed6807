-- Before a packet whose keys are missing is loaded from the ledger: marks it 'reserved', so that
-- every grab answers "loading" (a retryable 503) instead of "unknown" while the loader waits for
-- the ledger to hold every event the packet ever decided. create.lua replaces a reservation.
-- KEYS: {rp:<id>}:meta
-- ARGV: keys_expire_at_ms
-- Reply: 'reserved' (made now, or already), or the status of a packet that exists.
local status = redis.call('HGET', KEYS[1], 'status')
if status then return status end
redis.call('HSET', KEYS[1], 'status', 'reserved')
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 'reserved'
