#!lua flags=allow-oom
-- Forget a destination that is no longer configured: its group and its
-- retry, attempts and state keys. Entries only it still held become done
-- for every group; `sweep.lua` removes them.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] attempts hash, KEYS[4] state hash
-- ARGV[1] group
-- Returns {1 if the group existed, its unread (-1 unknown), its pending}
local groups = groups_of(KEYS[1])
local g = groups[ARGV[1]]
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
if not g then return {0, 0, 0} end
redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1])
local unread = -1
if g.lag then unread = g.lag end
return {1, unread, g.pending}
