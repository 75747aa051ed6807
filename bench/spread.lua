-- wrk script: the spread case. Request n grabs packet RP_FIRST_PACKET + (n % RP_PACKETS) as a new
-- user (X-User-Id counts up from RP_FIRST_USER). Run with -t1: one Lua state, so one counter.
local first_packet = tonumber((assert(os.getenv("RP_FIRST_PACKET"), "set RP_FIRST_PACKET")))
local packets = tonumber(os.getenv("RP_PACKETS") or "10000")
local user = tonumber(os.getenv("RP_FIRST_USER") or "1000000")
local counter = 0
local headers = { ["Content-Length"] = "0" }

request = function()
  local packet = first_packet + counter % packets
  counter = counter + 1
  user = user + 1
  headers["X-User-Id"] = tostring(user)
  return wrk.format("POST", "/v1/packets/" .. packet .. "/grab", headers)
end
