-- Frees an operation's lock: hands it to the first release in line (returned, for the lifecycle to
-- start), else deletes it.
-- KEYS: lock, wait zset, lock info, the operation's marker   ARGV: id, now
redis.call('DEL', KEYS[4])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local first = redis.call('ZRANGE', KEYS[2], 0, 0)
if first[1] then
  redis.call('ZREM', KEYS[2], first[1])
  redis.call('SET', KEYS[1], first[1])
  redis.call('HSET', KEYS[3], 'holder', first[1], 'since', ARGV[2])
  return first[1]
end
redis.call('DEL', KEYS[1], KEYS[3])
return false
