-- Stores a release's data if nobody changed it since it was read (compare-and-set on rev).
-- KEYS: release   ARGV: expected rev, data, new rev
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'rev', ARGV[3])
return 1
