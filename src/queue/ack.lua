#!lua flags=allow-oom
-- Ack: entries one destination is done with, delivered ('d') or not for it
-- ('f': its filter did not match, or a replay addressed to another
-- destination). Each leaves the group's pending list; an entry every group
-- is done with leaves the stream. A delivery ends the destination's
-- failure streak and closes its breaker.
-- KEYS[1] stream, KEYS[2] attempts hash, KEYS[3] state hash
-- ARGV[1] group (= destination), then pairs: kind, entry id
-- Returns the number of entries acknowledged.
local stream, attempts, state = KEYS[1], KEYS[2], KEYS[3]
local group = ARGV[1]
local ids, delivered = {}, false
for i = 2, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i + 1]
  if ARGV[i] == 'd' then delivered = true end
end
if #ids == 0 then return 0 end
local acked = redis.call('XACK', stream, group, unpack(ids))
redis.call('HDEL', attempts, unpack(ids))
if delivered then
  redis.call('HSET', state, 'failures', 0, 'last_ok', now_ms())
  redis.call('HDEL', state, 'breaker', 'open_until', 'probe_until', 'cooldown')
end
local groups = groups_of(stream)
local gone = {}
for _, id in ipairs(ids) do
  if done_elsewhere(stream, groups, group, id) then gone[#gone + 1] = id end
end
if #gone > 0 then redis.call('XDEL', stream, unpack(gone)) end
return acked
