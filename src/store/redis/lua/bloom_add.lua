-- Sets the k bits of one packet id in the Bloom filter bitmap (offsets computed by the client).
-- KEYS: {rp:bloom}
-- ARGV: bit offsets
for i = 1, #ARGV do redis.call('SETBIT', KEYS[1], ARGV[i], 1) end
return #ARGV
