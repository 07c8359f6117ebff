-- Takes an app and environment's lock for an operation (a rollback or sync outside a release): only when
-- no live release holds it and none waits for it, so an operation never jumps the line. The operation's
-- marker hash sits where a release's would, with a state that is not final, so a release asking meanwhile
-- waits in line behind it; the marker expires, so a worker that died mid-operation frees the lock after
-- the operation's deadline.
-- KEYS: lock, wait zset, lock info, the operation's marker, the release hash of the holder the caller saw
--       (the marker when none)
-- ARGV: id, holder the caller saw ('' for none), terminal states (comma-separated), now, ttl seconds
-- Returns {'retry'} when the lock changed hands since the caller read it, {'busy', who} when a live
-- release holds or waits for it, {'acquired'} when taken.
local holder = redis.call('GET', KEYS[1])
if (holder or '') ~= ARGV[2] then return {'retry'} end
if holder and holder ~= ARGV[1] then
  local st = redis.call('HGET', KEYS[5], 'state')
  local ended = (not st) or redis.call('HGET', KEYS[5], 'ended') == '1'
  if st then
    for s in string.gmatch(ARGV[3], '[^,]+') do if s == st then ended = true end end
  end
  if not ended then return {'busy', holder} end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0)
if first[1] then return {'busy', first[1]} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'since', ARGV[4])
redis.call('HSET', KEYS[4], 'state', 'operating', 'ended', '0')
redis.call('EXPIRE', KEYS[4], ARGV[5])
return {'acquired'}
