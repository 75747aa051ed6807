-- One grab, decided atomically: the only place a share leaves a packet.
-- KEYS: {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs
-- ARGV: user now_ms request_token want_meta('1' = append the immutable metadata)
-- Reply: {code, amount, seq, remaining, same_request, at_ms, meta}, code one of ok, conflict,
-- gone_expired, gone_empty, forbidden, unknown, loading; meta = {} or
-- {sender, total, count, kind, receiver, created_ms, expires_ms, greeting}.
local meta, shares, grabs = KEYS[1], KEYS[2], KEYS[3]
local user, now, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local m = redis.call('HMGET', meta, 'status', 'receiver', 'expires_ms', 'keys_expire_at_ms')
local status = m[1]
if not status then return {'unknown', 0, 0, 0, 0, 0, {}} end
if status == 'loading' then return {'loading', 0, 0, 0, 0, 0, {}} end

local about = {}
if ARGV[4] == '1' then
  about = redis.call('HMGET', meta, 'sender', 'total', 'count', 'kind', 'receiver', 'created_ms',
                     'expires_ms', 'greeting')
end

-- The order of the checks is the API's: forbidden, then conflict (before emptiness or expiry).
if m[2] ~= '' and m[2] ~= user then return {'forbidden', 0, 0, 0, 0, 0, about} end

-- One grab per user (invariant 2). The answer carries the first grab; same_request = 1 when it
-- was made by this very request (a retry whose first reply was lost).
local first = redis.call('HGET', grabs, user)
if first then
  local amount, seq, at, first_token = string.match(first, '^(%d+):(%d+):(%d+):(.*)$')
  local same = (token ~= '' and first_token == token) and 1 or 0
  return {'conflict', tonumber(amount), tonumber(seq), redis.call('LLEN', shares), same,
          tonumber(at), about}
end

if status == 'expired' or status == 'refunded' or now >= tonumber(m[3]) then
  return {'gone_expired', 0, 0, redis.call('LLEN', shares), 0, 0, about}
end

-- No oversell (invariant 1): a share is handed out only by popping it from the list.
local share = redis.call('LPOP', shares)
if not share then return {'gone_empty', 0, 0, 0, 0, 0, about} end
local seq = redis.call('HLEN', grabs) + 1
redis.call('HSET', grabs, user, share .. ':' .. seq .. ':' .. ARGV[2] .. ':' .. token)
if seq == 1 then redis.call('PEXPIREAT', grabs, m[4]) end
redis.call('HINCRBY', meta, 'grabbed', share)
local remaining = redis.call('LLEN', shares)
if remaining == 0 then redis.call('HSET', meta, 'status', 'exhausted') end
return {'ok', tonumber(share), seq, remaining, 0, now, about}
