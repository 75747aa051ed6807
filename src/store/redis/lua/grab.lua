-- One grab, decided atomically: the only place a share leaves a packet, and the grab's event is
-- recorded in the same step (a transactional outbox in the packet's slot): once this script has
-- run and WAIT has seen it on a replica, the grab is decided and will be published, whatever
-- happens to the request.
-- KEYS: {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs, the outbox of the packet's slot
-- ARGV: user now_ms request_token want_meta('1' = append the immutable metadata) packet_id
-- Reply: {code, amount, seq, remaining, same_request, at_ms, meta, outbox_entry_id}, code one of
-- ok, conflict, gone_expired, gone_empty, forbidden, unknown, loading; meta = {} or
-- {sender, total, count, kind, receiver, created_ms, expires_ms, greeting}.
local meta, shares, grabs, outbox = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user, now, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local m = redis.call('HMGET', meta, 'status', 'receiver', 'expires_ms', 'keys_expire_at_ms')
local status = m[1]
if not status then return {'unknown', 0, 0, 0, 0, 0, {}, ''} end
-- Being loaded (a new packet, or one restored from the ledger): not grabbable yet.
if status == 'loading' or status == 'reserved' then return {'loading', 0, 0, 0, 0, 0, {}, ''} end

local about = {}
if ARGV[4] == '1' then
  about = redis.call('HMGET', meta, 'sender', 'total', 'count', 'kind', 'receiver', 'created_ms',
                     'expires_ms', 'greeting')
end

-- The order of the checks is the API's: forbidden, then conflict (before emptiness or expiry).
if m[2] ~= '' and m[2] ~= user then return {'forbidden', 0, 0, 0, 0, 0, about, ''} end

-- One grab per user (invariant 2, docs/invariants.md). The answer carries the first grab;
-- same_request = 1 when it was made by this very request (a retry whose first reply was lost).
-- A repeat records nothing and publishes nothing; it only sets the meta's expiry to the value
-- it has, a write that changes no data but moves this connection's replication offset past the
-- first grab, so the WAIT that follows proves a replica holds the grab this answer reports.
local first = redis.call('HGET', grabs, user)
if first then
  local amount, seq, at, first_token = string.match(first, '^(%d+):(%d+):(%d+):(.*)$')
  local same = (token ~= '' and first_token == token) and 1 or 0
  redis.call('PEXPIREAT', meta, m[4])
  return {'conflict', tonumber(amount), tonumber(seq), redis.call('LLEN', shares), same,
          tonumber(at), about, ''}
end

if status == 'expired' or status == 'refunded' or now >= tonumber(m[3]) then
  return {'gone_expired', 0, 0, redis.call('LLEN', shares), 0, 0, about, ''}
end

-- No oversell (invariant 1): a share is handed out only by popping it from the list.
local share = redis.call('LPOP', shares)
if not share then return {'gone_empty', 0, 0, 0, 0, 0, about, ''} end
local seq = redis.call('HLEN', grabs) + 1
redis.call('HSET', grabs, user, share .. ':' .. seq .. ':' .. ARGV[2] .. ':' .. token)
if seq == 1 then redis.call('PEXPIREAT', grabs, m[4]) end
redis.call('HINCRBY', meta, 'grabbed', share)
local remaining = redis.call('LLEN', shares)
if remaining == 0 then redis.call('HSET', meta, 'status', 'exhausted') end
-- The event, in the same step as the decision (fields: type, packet, user, amount, seq, at).
local entry = redis.call('XADD', outbox, '*', 't', 'g', 'p', ARGV[5], 'u', user, 'a', share,
                         's', seq, 'at', ARGV[2])
return {'ok', tonumber(share), seq, remaining, 0, now, about, entry}
