-- The ledger has finished a packet that was reserved for a restore: the reservation goes, so
-- that its grabs and reads are answered from the ledger. Anything but a reservation is left.
-- KEYS: {rp:<id>}:meta
-- Reply: 1 when a reservation was removed, else 0.
if redis.call('HGET', KEYS[1], 'status') == 'reserved' then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
