--[[
  Stores a user's token set and metadata atomically, never replacing a newer set with an older one.

  KEYS[1] <prefix>:tok:<userId>    encrypted token set (string)
  KEYS[2] <prefix>:meta:<userId>   metadata (hash)
  KEYS[3] <prefix>:due             due index (zset)
  KEYS[4] <prefix>:uname           preferred_username -> userId (hash)
  KEYS[5] <prefix>:events          state-change stream

  ARGV[1] encrypted token set (binary envelope)
  ARGV[2] issuedAtMs of this set (ordering guard: an older set never overwrites a newer one)
  ARGV[3] expected current version, or '' for none (refresh writes pass the version they read)
  ARGV[4] due time in ms for the refresh index, or '' to leave the user out of it
  ARGV[5] event state ('stored' or 'refreshed')
  ARGV[6] now in ms
  ARGV[7] events stream max length (approximate trim)
  ARGV[8] userId
  ARGV[9] username ('' when unknown)
  ARGV[10..] metadata field/value pairs (without version, state, reason, username)

  Returns {version, 0} on success; {-1, currentVersion} when the expected version does not match;
  {-2, currentVersion} when the stored set is newer.
]]
local current = redis.call('HMGET', KEYS[2], 'version', 'issuedAtMs', 'username')
local version = tonumber(current[1]) or 0
local issuedAt = tonumber(current[2]) or 0
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then
  return {-1, version}
end
if tonumber(ARGV[2]) < issuedAt then
  return {-2, version}
end
version = version + 1
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'version', version, 'state', 'active', unpack(ARGV, 10))
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[2], 'username', ARGV[9])
  redis.call('HSET', KEYS[4], ARGV[9], ARGV[8])
end
local oldName = current[3]
if oldName and oldName ~= ARGV[9] and redis.call('HGET', KEYS[4], oldName) == ARGV[8] then
  redis.call('HDEL', KEYS[4], oldName)
end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[8])
else
  redis.call('ZREM', KEYS[3], ARGV[8])
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[7], '*', 'user', ARGV[8], 'state', ARGV[5], 'reason', '', 'at', ARGV[6])
return {version, 0}
