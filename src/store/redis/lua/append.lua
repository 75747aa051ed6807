-- Loads the next chunk of a 'loading' packet's shares or (recovered) grabs. Idempotent by
-- position: a chunk is applied only when it starts exactly where the loaded part ends, so a
-- retried or duplicated call changes nothing.
-- KEYS: {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs
-- ARGV: 'shares'|'grabs', offset, then shares (amounts), or grabs as user amount seq at_ms ...
-- Reply: {'loaded'|'exists'|'missing', status, shares loaded, grabs loaded}
local meta, shares, grabs = KEYS[1], KEYS[2], KEYS[3]

local m = redis.call('HMGET', meta, 'status', 'keys_expire_at_ms', 'shares_to_load',
                     'grabs_to_load')
local status = m[1]
if not status then return {'missing', '', 0, 0} end
if status ~= 'loading' then
  return {'exists', status, redis.call('LLEN', shares), redis.call('HLEN', grabs)}
end

local offset = tonumber(ARGV[2])
local slice = 1000
if ARGV[1] == 'shares' then
  if redis.call('LLEN', shares) == offset then
    for from = 3, #ARGV, slice do
      redis.call('RPUSH', shares, unpack(ARGV, from, math.min(from + slice - 1, #ARGV)))
    end
    redis.call('PEXPIREAT', shares, m[2])
  end
elseif ARGV[1] == 'grabs' then
  if redis.call('HLEN', grabs) == offset then
    local grabbed = 0
    for i = 3, #ARGV, 4 do
      -- Same layout as grab.lua writes: amount:seq:at_ms:request token (none for a recovery).
      local value = ARGV[i + 1] .. ':' .. ARGV[i + 2] .. ':' .. ARGV[i + 3] .. ':'
      redis.call('HSET', grabs, ARGV[i], value)
      grabbed = grabbed + tonumber(ARGV[i + 1])
    end
    redis.call('HINCRBY', meta, 'grabbed', grabbed)
    redis.call('PEXPIREAT', grabs, m[2])
  end
else
  return redis.error_reply('ERR append.lua: unknown part ' .. tostring(ARGV[1]))
end

local loaded_shares = redis.call('LLEN', shares)
local loaded_grabs = redis.call('HLEN', grabs)
if loaded_shares == tonumber(m[3]) and loaded_grabs == tonumber(m[4]) then
  status = loaded_shares > 0 and 'open' or 'exhausted'
  redis.call('HSET', meta, 'status', status)
end
return {'loaded', status, loaded_shares, loaded_grabs}
