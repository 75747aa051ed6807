-- Registers a packet for the sweeper: member = packet id, score = expires_ms. A script only so
-- that it can be acknowledged after WAIT like the packet's own keys (a lost registration would
-- leave the packet's refund unswept).
-- KEYS: {rp:expiry}
-- ARGV: expires_ms packet_id
return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
