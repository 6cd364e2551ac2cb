--[[
  Compare-and-set: replaces a value only if it still equals what the caller read, so a maintenance
  rewrite (tokex rekey) never overwrites a newer value written meanwhile by a worker.

  KEYS[1] a string key (e.g. <prefix>:tok:<userId>) or a hash key (e.g. a BullMQ job hash)

  ARGV[1] expected current value (as read by the caller)
  ARGV[2] new value
  ARGV[3] hash field to compare and set, or '' when KEYS[1] is a string key

  Returns 1 when the value was replaced (a string key keeps its TTL); 0 when the current value
  differs or is missing (nothing is written).
]]
local current
if ARGV[3] == '' then
  current = redis.call('GET', KEYS[1])
else
  current = redis.call('HGET', KEYS[1], ARGV[3])
end
if current ~= ARGV[1] then
  return 0
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
else
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[2])
end
return 1
