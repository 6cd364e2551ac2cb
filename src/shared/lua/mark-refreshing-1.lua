--[[
  Records, before the IAM is called, that a refresh of the stored refresh token is in flight: the
  fence that keeps a rotated refresh token from being used twice even when the refresh lock expired
  during a Redis outage. The next write of the token set (save-tokens, end-tokens) clears it.

  KEYS[1] <prefix>:meta:<userId>   metadata (hash)

  ARGV[1] the version read under the lock (the set whose refresh token is about to be used)
  ARGV[2] owner (random per refresh attempt)
  ARGV[3] now in ms
  ARGV[4] how long another owner's mark stays binding, in ms

  Returns {1, 0} when marked; {-1, currentVersion} when the set changed since it was read;
  {-2, ageMs} when another owner's refresh of this set is in flight and not yet stale.
]]
local current = redis.call('HMGET', KEYS[1], 'version', 'refreshingBy', 'refreshingAtMs')
local version = tonumber(current[1]) or 0
if tonumber(ARGV[1]) ~= version then
  return {-1, version}
end
if current[2] and current[2] ~= ARGV[2] then
  local age = tonumber(ARGV[3]) - (tonumber(current[3]) or 0)
  if age < tonumber(ARGV[4]) then
    return {-2, age}
  end
end
redis.call('HSET', KEYS[1], 'refreshingBy', ARGV[2], 'refreshingAtMs', ARGV[3])
return {1, 0}
