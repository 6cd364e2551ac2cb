--[[
  Claims the users whose refresh is due, for one scheduler tick: reads them from the due index
  (ZRANGE BYSCORE -inf now LIMIT: O(log N + due), never a scan) and pushes their score to a lease
  time, so the following ticks do not read them again while their refresh job waits in the queue.
  A successful refresh (or exchange) rewrites the score through save-tokens; when the lease runs out
  before that, the user is read again and re-enqueued (deduplicated by the queue).

  KEYS[1] <prefix>:due             due index (zset: userId -> due time in ms)

  ARGV[1] now in ms (users with a score <= now are due)
  ARGV[2] maximum number of users to claim
  ARGV[3] lease: new score of the claimed users, in ms

  Returns a flat list {userId1, dueAtMs1, userId2, dueAtMs2, ...} of the claimed users, earliest first.
]]
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]), 'WITHSCORES')
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], due[i])
end
return due
