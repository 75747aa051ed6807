-- Whether a slot's outbox still holds an event of one packet (the loader waits until it does
-- not before it restores the packet from the ledger). Reads in chunks of 1000 entries.
-- KEYS: the slot's outbox
-- ARGV: packet_id
-- Reply: 1 or 0.
local from = '-'
while true do
  local entries = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 1000)
  if #entries == 0 then return 0 end
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    for i = 1, #fields, 2 do
      if fields[i] == 'p' and fields[i + 1] == ARGV[1] then return 1 end
    end
  end
  if #entries < 1000 then return 0 end
  from = '(' .. entries[#entries][1]
end
