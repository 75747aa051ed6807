-- wrk script: the hot packet through nginx, a crowd. POST /v1/packets/<RP_PACKET>/grab, each
-- request as the next user of RP_TOKENS (a file of bearer tokens, one user per line), starting at
-- line RP_FIRST_LINE (1-based). Run with -t1: one Lua state, so one counter. Past the last line it
-- wraps around (those users have grabbed already: 409s), so give it more lines than requests.
local packet = (assert(os.getenv("RP_PACKET"), "set RP_PACKET"))
local tokens_file = (assert(os.getenv("RP_TOKENS"), "set RP_TOKENS"))
local path = "/v1/packets/" .. packet .. "/grab"

local tokens = {}
for line in io.lines(tokens_file) do
  if line ~= "" then tokens[#tokens + 1] = line end
end
assert(#tokens > 0, "no tokens in " .. tokens_file)
local next_line = tonumber(os.getenv("RP_FIRST_LINE") or "1")
local headers = { ["Content-Length"] = "0" }

request = function()
  if next_line > #tokens then next_line = 1 end
  headers["Authorization"] = "Bearer " .. tokens[next_line]
  next_line = next_line + 1
  return wrk.format("POST", path, headers)
end
