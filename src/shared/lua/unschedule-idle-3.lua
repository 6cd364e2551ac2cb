--[[
  Takes a user out of the due index only if there is nothing to refresh: no token set, not active,
  or no refresh token. Checked and removed atomically, so a login that stores new tokens between the
  refresh job's read and this call keeps its schedule.

  KEYS[1] <prefix>:tok:<userId>    encrypted token set (string)
  KEYS[2] <prefix>:meta:<userId>   metadata (hash)
  KEYS[3] <prefix>:due             due index (zset)

  ARGV[1] userId

  Returns 1 when removed, 0 when the user has tokens to refresh (left in the index).
]]
local meta = redis.call('HMGET', KEYS[2], 'state', 'refreshable')
if redis.call('EXISTS', KEYS[1]) == 1 and meta[1] == 'active' and meta[2] == '1' then
  return 0
end
return redis.call('ZREM', KEYS[3], ARGV[1])
