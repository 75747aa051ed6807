-- How many grabs a packet has: a cheap question the reconciler asks of every open packet
-- (snapshot.lua reads every grab: on a hot packet that blocks the node for a second).
-- KEYS: {rp:<id>}:meta, {rp:<id>}:grabs
-- Reply: -1 when the packet has no keys, else the number of grabs.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HLEN', KEYS[2])
