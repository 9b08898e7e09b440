#!lua flags=allow-oom
-- Promote due retries back into the stream. Safe with many processes: the
-- move of each member is atomic, so a member is promoted exactly once.
-- KEYS[1] stream, KEYS[2] delayed; ARGV[1] max members to move
-- Returns {moved, ms until the next member is due (-1 if none)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local _, fields = cmsgpack.unpack(member)
  redis.call('XADD', KEYS[1], '*', unpack(fields))
  redis.call('ZREM', KEYS[2], member)
end
local next_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local wait = -1
if #next_due > 0 then
  wait = math.max(0, tonumber(next_due[2]) - now)
end
return {#due, wait}
