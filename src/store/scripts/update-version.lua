-- Stores a version record if it is still what the caller read (compare-and-set on the whole value,
-- '' for "no record yet"), and lists the version under its app on first write.
-- KEYS: version record, app's versions zset   ARGV: expected value, new value, now, version
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[4])
return 1
