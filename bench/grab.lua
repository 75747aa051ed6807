-- wrk script: the hot packet. POST /v1/packets/<RP_PACKET>/grab, each request as a new user
-- (X-User-Id counts up from RP_FIRST_USER). Run with -t1: one Lua state, so one counter.
local packet = (assert(os.getenv("RP_PACKET"), "set RP_PACKET"))
local user = tonumber(os.getenv("RP_FIRST_USER") or "1000000")
local path = "/v1/packets/" .. packet .. "/grab"
local headers = { ["Content-Length"] = "0" }

request = function()
  user = user + 1
  headers["X-User-Id"] = tostring(user)
  return wrk.format("POST", path, headers)
end
