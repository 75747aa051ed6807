-- The relay's recovery: the oldest entries of a slot's outbox up to a stream id (entries older
-- than the fast path's time to publish them). It also counts the claim, a write, so that the
-- WAIT that follows proves a replica holds every entry returned: an entry is never published
-- while a failover could still take it back.
-- KEYS: the slot's outbox, the slot's claim counter
-- ARGV: max_id (inclusive), count
-- Reply: XRANGE's entries: {{id, {field, value, ...}}, ...}
redis.call('INCR', KEYS[2])
return redis.call('XRANGE', KEYS[1], '-', ARGV[1], 'COUNT', ARGV[2])
