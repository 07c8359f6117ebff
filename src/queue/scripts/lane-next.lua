-- The next place in a notify lane: KEYS[1] the lane's counter; ARGV[1] its TTL (ms).
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
