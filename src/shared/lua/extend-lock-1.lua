--[[
  Extends a per-user refresh lock while it is still held by this caller (compare-and-expire), so a
  slow refresh (IAM latency, Redis write retries) keeps its lock without a huge initial TTL.

  KEYS[1] <prefix>:lock:<userId>   lock (string holding the owner's random value, with a TTL)

  ARGV[1] owner value the caller set when it took the lock
  ARGV[2] new time to live in ms

  Returns 1 when extended, 0 when the lock is no longer held by this owner.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
