-- Expiry: closes an open packet whose time has passed, fixes its refund (total - grabbed) and
-- records the refund's event in the slot's outbox in the same step, behind every grab of the
-- packet (they were recorded when they were decided). Idempotent: a second call answers
-- 'already' and records nothing, so a refund is recorded once.
-- KEYS: {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs, the outbox of the packet's slot
-- ARGV: now_ms packet_id
-- Reply: {code, refund, sender, status, closed_ms, outbox_entry_id}; code one of closed,
-- already, open, exhausted, loading, unknown.
local meta, outbox = KEYS[1], KEYS[4]
local now = tonumber(ARGV[1])

local m = redis.call('HMGET', meta, 'status', 'expires_ms', 'total', 'grabbed', 'refund', 'sender',
                     'closed_ms')
local status = m[1]
if not status then return {'unknown', 0, 0, '', 0, ''} end
if status == 'loading' or status == 'reserved' then return {'loading', 0, 0, status, 0, ''} end
local sender = tonumber(m[6])
if status == 'exhausted' then return {'exhausted', 0, sender, status, 0, ''} end
if status == 'refunded' then
  return {'already', tonumber(m[5]) or 0, sender, status, tonumber(m[7]) or 0, ''}
end
-- 'expired' is what an earlier version left between the close and its refund's
-- acknowledgement: that refund may never have been published, so it is recorded now (the
-- ledger applies a refund once by packet, however often it arrives).
if status ~= 'expired' and now < tonumber(m[2]) then return {'open', 0, sender, status, 0, ''} end

-- Money is conserved (invariant 3, docs/invariants.md): what was not grabbed goes back,
-- computed once, here.
local refund = tonumber(m[3]) - tonumber(m[4])
local closed = tonumber(m[7]) or now
redis.call('HSET', meta, 'status', 'refunded', 'refund', refund, 'closed_ms', closed)
local entry = ''
if refund > 0 then
  entry = redis.call('XADD', outbox, '*', 't', 'r', 'p', ARGV[2], 'u', m[6], 'a', refund, 's', 0,
                     'at', closed)
end
return {'closed', refund, sender, 'refunded', closed, entry}
