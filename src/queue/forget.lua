#!lua flags=allow-oom
-- Forget a destination that is no longer configured: its group and its
-- retry, attempts and state keys. Entries only it still held become done
-- for every group; `sweep.lua` removes them.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] attempts hash, KEYS[4] state hash,
-- KEYS[5] rate bucket
-- ARGV[1] group; ARGV[2] (optional) ms: forget it only if nobody uses it.
-- An instance whose configuration still (or already) names the destination
-- may be using it: so the group must hold nothing (nothing pending,
-- nothing unread), none of its readers may have read within ARGV[2] ms,
-- and it must be neither paused nor held by its breaker (an instance
-- waiting on those does not read).
-- Returns {1 forgotten | 0 no such group | 2 kept (in use), its unread
-- (-1 unknown), its pending}
local groups = groups_of(KEYS[1])
local g = groups[ARGV[1]]
if not g then
  if not ARGV[2] then redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5]) end
  return {0, 0, 0}
end
local unread = -1
if g.lag then unread = g.lag end
if ARGV[2] then
  local in_use = g.pending > 0 or unread ~= 0
  local within = tonumber(ARGV[2])
  if not in_use then
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
      for i = 1, #c, 2 do
        if c[i] == 'idle' and c[i + 1] < within then in_use = true end
      end
    end
  end
  if not in_use then
    local state = redis.call('HMGET', KEYS[4], 'paused', 'breaker')
    in_use = (state[1] and state[1] ~= '') or state[2] == 'open' or state[2] == 'half_open'
  end
  if in_use then return {2, unread, g.pending} end
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1])
return {1, unread, g.pending}
