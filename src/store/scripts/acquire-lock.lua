-- Takes the lock of an app and environment, or joins the line. A lock whose holder has ended (a final
-- state, or failed before changing anything) or vanished is stale — e.g. its process crashed between
-- commit and hand-over — and is taken over rather than waited on forever. A holder that failed half-way
-- keeps the lock.
-- KEYS: lock, wait zset, lock info, the release hash of the holder the caller saw (its own when none)
-- ARGV: id, score, holder the caller saw ('' for none), terminal states (comma-separated), now
local holder = redis.call('GET', KEYS[1])
-- The holder's release hash is KEYS[4], so the caller named the holder it read before: when the lock
-- changed hands since, the caller reads again and retries.
if (holder or '') ~= ARGV[3] then return {'retry', 0, holder or ''} end
if holder and holder ~= ARGV[1] then
  local st = redis.call('HGET', KEYS[4], 'state')
  local ended = (not st) or redis.call('HGET', KEYS[4], 'ended') == '1'
  if st then
    for s in string.gmatch(ARGV[4], '[^,]+') do if s == st then ended = true end end
  end
  if not ended then
    redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
    return {'waiting', redis.call('ZRANK', KEYS[2], ARGV[1]) + 1, holder}
  end
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0)
if (not holder or holder ~= ARGV[1]) and first[1] and first[1] ~= ARGV[1] then
  -- someone was already in line: the lock goes to them, this one waits
  redis.call('ZREM', KEYS[2], first[1])
  redis.call('SET', KEYS[1], first[1])
  redis.call('HSET', KEYS[3], 'holder', first[1], 'since', ARGV[5])
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
  return {'waiting', redis.call('ZRANK', KEYS[2], ARGV[1]) + 1, first[1]}
end
if holder ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'since', ARGV[5])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return {'acquired', 0, ''}
