-- Marks an expired packet refunded once its refund event is durable (the sweeper's last step).
-- KEYS: {rp:<id>}:meta
-- Reply: the status after the call ('' when the packet is gone).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'expired' then
  redis.call('HSET', KEYS[1], 'status', 'refunded')
  return 'refunded'
end
return status
