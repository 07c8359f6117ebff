-- Commits one transition of a release: the new state, the audit entry and, when the release ends, the
-- lock hand-over to the next release in line — together or not at all.
-- The lock info hash says who holds the lock and since when, for status. An approval is committed only
-- if the approver was not yet in the release's approvers set: the domain refuses a second approval too,
-- and this makes it hold even against a caller that skips the domain.
-- KEYS: release, audit list, audit stream, active set, lock, wait zset, lock info, approvers set
-- ARGV: expected rev, data, new rev, state, audit json, ended?, release id, holds-lock?, now, approver
local cur = redis.call('HGET', KEYS[1], 'rev')
if cur ~= ARGV[1] then return {'conflict', cur or ''} end
if ARGV[10] ~= '' and redis.call('SADD', KEYS[8], ARGV[10]) == 0 then return {'duplicate', ARGV[10]} end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'rev', ARGV[3], 'state', ARGV[4], 'ended', ARGV[6])
redis.call('RPUSH', KEYS[2], ARGV[5])
redis.call('XADD', KEYS[3], '*', 'entry', ARGV[5])
local handed = ''
if ARGV[6] == '1' then
  redis.call('SREM', KEYS[4], ARGV[7])
  redis.call('ZREM', KEYS[6], ARGV[7])
  if redis.call('GET', KEYS[5]) == ARGV[7] then
    redis.call('DEL', KEYS[5], KEYS[7])
    local nxt = redis.call('ZRANGE', KEYS[6], 0, 0)
    if nxt[1] then
      redis.call('ZREM', KEYS[6], nxt[1])
      redis.call('SET', KEYS[5], nxt[1])
      redis.call('HSET', KEYS[7], 'holder', nxt[1], 'since', ARGV[9])
      handed = nxt[1]
    end
  end
elseif ARGV[8] == '1' and not redis.call('GET', KEYS[5]) then
  -- never take a lock another release holds; only re-assert a free one
  redis.call('SET', KEYS[5], ARGV[7])
  redis.call('HSET', KEYS[7], 'holder', ARGV[7], 'since', ARGV[9])
end
return {'ok', handed}
