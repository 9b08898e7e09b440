#!lua flags=allow-oom
-- Retries that are due, handed to this consumer: each is still pending for
-- the group, and XCLAIM makes it this consumer's with a fresh delivery
-- count (the crash-loop guard counts hand-outs without an outcome).
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] attempts hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] most to take
-- Returns {{{id, fields, attempts made (probes too)}...}, ms until the next
-- is due (-1 none)}
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'RETRYCOUNT', 1)
  if claimed[1] and claimed[1][2] then
    out[#out + 1] = {id, claimed[1][2], attempts_tried(redis.call('HGET', KEYS[3], id))}
  else
    redis.call('HDEL', KEYS[3], id)
  end
end
local next_due = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local wait = -1
if #next_due > 0 then wait = math.max(0, tonumber(next_due[2]) - now) end
return {out, wait}
