-- A mutex's holder lets go of it, or keeps it longer: only while it still holds it
-- (the token it took it with), so a holder whose lease ran out cannot release
-- or extend the lease of whoever took the mutex after it.
-- KEYS[1] mutex key
-- ARGV[1] token, ARGV[2] 'release' | 'extend', ARGV[3] lease ms (extend)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'release' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return 1
