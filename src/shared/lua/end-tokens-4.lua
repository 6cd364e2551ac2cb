--[[
  Ends a user's tokens: deletes the encrypted token set, takes the user out of the due index and
  records why in the metadata (kept so operators and readers can see the state).

  KEYS[1] <prefix>:tok:<userId>    encrypted token set (string)
  KEYS[2] <prefix>:meta:<userId>   metadata (hash)
  KEYS[3] <prefix>:due             due index (zset)
  KEYS[4] <prefix>:events          state-change stream

  ARGV[1] new state ('reauth_required' or 'revoked')
  ARGV[2] reason (a short code, never a token)
  ARGV[3] expected current version, or '' for none
  ARGV[4] now in ms
  ARGV[5] events stream max length (approximate trim)
  ARGV[6] userId

  Returns {version, 0} on success; {-1, currentVersion} on a version mismatch; {-3, 0} when the
  user has no metadata.
]]
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {-3, 0}
end
local version = tonumber(redis.call('HGET', KEYS[2], 'version')) or 0
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then
  return {-1, version}
end
version = version + 1
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[6])
redis.call('HSET', KEYS[2], 'version', version, 'state', ARGV[1], 'reason', ARGV[2], 'updatedAtMs', ARGV[4], 'endedAtMs', ARGV[4], 'refreshable', '0')
redis.call('HDEL', KEYS[2], 'refreshingBy', 'refreshingAtMs')
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'user', ARGV[6], 'state', ARGV[1], 'reason', ARGV[2], 'at', ARGV[4])
return {version, 0}
