-- Fenced sweep: the next batch of expired packet ids, only for a sweeper whose lease token is not
-- lower than the highest one seen here; records the token it brings. A sweeper that was paused
-- past its lease (a newer one has run since) is refused at its next batch.
-- KEYS: {rp:expiry}, {rp:expiry}:fence
-- ARGV: fencing_token, now_ms, batch
-- Reply: the ids (as ZRANGEBYSCORE), or the error "FENCED <highest token seen>".
local token = tonumber(ARGV[1])
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
if token < seen then return redis.error_reply('FENCED ' .. seen) end
if token > seen then redis.call('SET', KEYS[2], ARGV[1]) end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
