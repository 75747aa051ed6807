-- Expiry: closes an open packet whose time has passed and fixes its refund (total - grabbed).
-- Idempotent: a second call answers 'already' with the same refund, so only the call that
-- answered 'closed' emits the refund.
-- KEYS: {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs
-- ARGV: now_ms
-- Reply: {code, refund, sender, status, closed_ms}; code one of closed, already, open, exhausted,
-- loading, unknown.
local meta = KEYS[1]
local now = tonumber(ARGV[1])

local m = redis.call('HMGET', meta, 'status', 'expires_ms', 'total', 'grabbed', 'refund', 'sender',
                     'closed_ms')
local status = m[1]
if not status then return {'unknown', 0, 0, '', 0} end
local sender = tonumber(m[6])
if status == 'loading' then return {'loading', 0, sender, status, 0} end
if status == 'exhausted' then return {'exhausted', 0, sender, status, 0} end
if status == 'expired' or status == 'refunded' then
  return {'already', tonumber(m[5]) or 0, sender, status, tonumber(m[7]) or 0}
end
if now < tonumber(m[2]) then return {'open', 0, sender, status, 0} end

-- Money is conserved (invariant 3): what was not grabbed goes back, computed once, here.
local refund = tonumber(m[3]) - tonumber(m[4])
redis.call('HSET', meta, 'status', 'expired', 'refund', refund, 'closed_ms', ARGV[1])
return {'closed', refund, sender, 'expired', now}
