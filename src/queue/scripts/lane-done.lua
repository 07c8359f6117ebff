-- A lane's message is settled (sent, or refused for good): KEYS[1] the lane's highest settled place,
-- KEYS[2] its "busy" marker; ARGV[1] the place, ARGV[2] the TTL (ms). Only ever moves forward: a
-- message let through after a stall may settle after its successor.
local done = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if n > done then
  redis.call('SET', KEYS[1], n, 'PX', ARGV[2])
end
redis.call('DEL', KEYS[2])
return math.max(n, done)
