-- wrk script (run with -t1: one Lua state): grabs on hot packets mixed with creates or deposits.
-- Request n is a create (or, with RP_WRITE=deposit, a deposit) when n % RP_WRITE_EVERY == 0,
-- else a grab of packet RP_PACKETS[n % #RP_PACKETS] by a new user (X-User-Id counts up from
-- RP_FIRST_USER). RP_WRITE_EVERY=0: grabs only; 1: writes only. Writes come from RP_SENDERS
-- senders in turn from RP_FIRST_SENDER, each with a unique request_id. A write's latency is
-- measured here (LuaJIT FFI clock): its reply names its sender (create: "sender_id", deposit:
-- "user_id" + "balance_cents"), which finds the send time; wrk's own latency mixes both kinds.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } rp_timespec;
  int clock_gettime(int clock, rp_timespec *now);
]]
local now_ts = ffi.new("rp_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local packets = {}
for id in string.gmatch(os.getenv("RP_PACKETS") or "", "[0-9]+") do packets[#packets + 1] = id end
local write_every = tonumber(os.getenv("RP_WRITE_EVERY") or "10")
local write_kind = os.getenv("RP_WRITE") or "create"
local user = tonumber(os.getenv("RP_FIRST_USER") or "1000000")
local first_sender = tonumber(os.getenv("RP_FIRST_SENDER") or "900000000")
local senders = tonumber(os.getenv("RP_SENDERS") or "256")
local tag = os.getenv("RP_TAG") or "m"
assert(write_every == 1 or #packets > 0, "set RP_PACKETS")

local counter = 0
local sender_turn = 0
local sent_at = {}
latencies = {}
writes_sent, writes_ok, writes_failed, grabs_sent, grabs_ok = 0, 0, 0, 0, 0
local grab_headers = { ["Content-Length"] = "0" }
local write_headers = { ["Content-Type"] = "application/json" }

request = function()
  counter = counter + 1
  if write_every > 0 and counter % write_every == 0 then
    local sender = first_sender + sender_turn % senders
    sender_turn = sender_turn + 1
    writes_sent = writes_sent + 1
    write_headers["X-User-Id"] = tostring(sender)
    sent_at[sender] = now_ms()
    if write_kind == "deposit" then
      return wrk.format("POST", "/v1/users/" .. sender .. "/deposit", write_headers,
        string.format('{"amount_cents":100,"request_id":"%s-%d"}', tag, counter))
    end
    return wrk.format("POST", "/v1/packets", write_headers,
      string.format('{"total_cents":100,"count":10,"kind":"lucky","request_id":"%s-%d"}', tag, counter))
  end
  user = user + 1
  grabs_sent = grabs_sent + 1
  grab_headers["X-User-Id"] = tostring(user)
  return wrk.format("POST", "/v1/packets/" .. packets[counter % #packets + 1] .. "/grab", grab_headers)
end

response = function(status, headers, body)
  local sender = string.match(body, '"sender_id":(%d+)')
  if not sender and string.find(body, '"balance_cents"', 1, true) then
    sender = string.match(body, '"user_id":(%d+)')
  end
  if sender then
    local started = sent_at[tonumber(sender)]
    if started then
      latencies[#latencies + 1] = now_ms() - started
      sent_at[tonumber(sender)] = nil
    end
    writes_ok = writes_ok + 1
  elseif status == 200 then
    grabs_ok = grabs_ok + 1
  elseif status ~= 409 and status ~= 410 then
    writes_failed = writes_failed + 1 -- a write refused (a grab is 200, 409 or 410)
  end
end

local threads = {}
setup = function(thread) threads[#threads + 1] = thread end

done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local samples = thread:get("latencies")
    table.sort(samples)
    local function at(q)
      if #samples == 0 then return 0 end
      return samples[math.max(1, math.ceil(q * #samples))]
    end
    io.write(string.format(
      "RP writes_sent=%d writes_ok=%d writes_failed=%d grabs_sent=%d grabs_ok=%d write_p50_ms=%.3f write_p99_ms=%.3f write_max_ms=%.3f\n",
      thread:get("writes_sent"), thread:get("writes_ok"), thread:get("writes_failed"),
      thread:get("grabs_sent"), thread:get("grabs_ok"), at(0.50), at(0.99), at(1.0)))
  end
end
