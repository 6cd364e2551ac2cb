--[[
  Clears this owner's in-flight refresh mark (mark-refreshing-1.lua) after the IAM answered with an
  error, i.e. it did not use up the refresh token. Another owner's mark is left alone.

  KEYS[1] <prefix>:meta:<userId>   metadata (hash)

  ARGV[1] owner

  Returns 1 when cleared, 0 otherwise.
]]
if redis.call('HGET', KEYS[1], 'refreshingBy') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'refreshingBy', 'refreshingAtMs') > 0 and 1 or 0
end
return 0
