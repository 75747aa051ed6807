-- What GET /v1/packets/{id} shows, read in one atomic step.
-- KEYS: {rp:<id>}:meta, {rp:<id>}:shares, {rp:<id>}:grabs
-- Reply: {meta as field/value pairs, grabs as user/"amount:seq:at_ms:token" pairs, shares left}
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[3]),
        redis.call('LLEN', KEYS[2])}
