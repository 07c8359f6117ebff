-- Stores a new release, its first audit entry, and indexes it (active set, per-app index).
-- KEYS: release, audit list, audit stream, active set, app index
-- ARGV: data, state, audit json, id, score
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'rev', '1', 'state', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], '*', 'entry', ARGV[3])
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[4])
return 1
