-- Creates a packet's keys, or reports the existing packet (idempotent by packet id). A
-- 'reserved' packet (reserve.lua: the loader restores it from the ledger) is created over.
-- KEYS: {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs (one slot)
-- ARGV: sender total count kind greeting receiver('' = anyone) created_ms expires_ms
--       keys_expire_at_ms shares_to_load grabs_to_load, then the first shares (may be none)
-- Reply: {'created'|'exists', status, shares loaded (LLEN), grabs loaded (HLEN)}
-- A packet whose shares and grabs do not fit one call stays 'loading' (not grabbable) until
-- append.lua has loaded the rest; the last call flips it to 'open' (or 'exhausted').
local meta, shares, grabs = KEYS[1], KEYS[2], KEYS[3]

local status = redis.call('HGET', meta, 'status')
if status and status ~= 'reserved' then
  return {'exists', status, redis.call('LLEN', shares), redis.call('HLEN', grabs)}
end

-- A reservation may sit on the remains of the lost packet: nothing of them is kept.
if status == 'reserved' then redis.call('DEL', shares, grabs) end

redis.call('HSET', meta, 'sender', ARGV[1], 'total', ARGV[2], 'count', ARGV[3], 'kind', ARGV[4],
           'greeting', ARGV[5], 'receiver', ARGV[6], 'created_ms', ARGV[7],
           'expires_ms', ARGV[8], 'keys_expire_at_ms', ARGV[9], 'shares_to_load', ARGV[10],
           'grabs_to_load', ARGV[11], 'grabbed', '0', 'status', 'loading')
redis.call('PEXPIREAT', meta, ARGV[9])

-- Lua's unpack() is limited by the C stack (about 8000 values): push in slices.
local first = 12
local last = #ARGV
local slice = 1000
for from = first, last, slice do
  redis.call('RPUSH', shares, unpack(ARGV, from, math.min(from + slice - 1, last)))
end
if last >= first then redis.call('PEXPIREAT', shares, ARGV[9]) end

local loaded_shares = redis.call('LLEN', shares)
status = 'loading'
if loaded_shares == tonumber(ARGV[10]) and tonumber(ARGV[11]) == 0 then
  status = loaded_shares > 0 and 'open' or 'exhausted'
  redis.call('HSET', meta, 'status', status)
end
return {'created', status, loaded_shares, 0}
