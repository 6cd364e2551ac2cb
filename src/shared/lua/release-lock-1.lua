--[[
  Releases a per-user refresh lock only if this caller still owns it (compare-and-delete): a holder
  whose lock expired and was taken by another process must not delete the new owner's lock.

  KEYS[1] <prefix>:lock:<userId>   lock (string holding the owner's random value, with a TTL)

  ARGV[1] owner value the caller set when it took the lock

  Returns 1 when the lock was deleted, 0 when it was not held by this owner (expired or taken over).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
