#!lua flags=allow-oom
-- Ack: entries one destination is done with, delivered ('d') or not for it
-- ('f': its filter did not match, or a replay addressed to another
-- destination). Each leaves the group's pending list. With the event log
-- on, a delivered entry keeps its attempt record (the successful attempt
-- appended) for as long as the log keeps the entry, and `trim.lua` removes
-- entries later; with it off, the record goes and an entry every group is
-- done with leaves the stream now. A delivery ends the destination's
-- failure streak and closes its breaker. The minute's counters take the
-- deliveries and their end-to-end times.
-- KEYS[1] stream, KEYS[2] attempts hash, KEYS[3] state hash, KEYS[4] this
-- minute's counters hash
-- ARGV[1] group (= destination), ARGV[2] '1' to keep records (log on),
-- ARGV[3] counters' time to live (s), ARGV[4] n latency buckets touched,
-- then n pairs (bucket field, count), then triples: kind, entry id,
-- history line of the successful attempt ('' for 'f')
-- Returns the number of entries acknowledged.
local stream, attempts, state, counters = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, keep = ARGV[1], ARGV[2] == '1'
local buckets = tonumber(ARGV[4])
local first = 5 + 2 * buckets
local ids, delivered = {}, 0
for i = first, #ARGV, 3 do
  local kind, id = ARGV[i], ARGV[i + 1]
  ids[#ids + 1] = id
  if kind == 'd' then
    delivered = delivered + 1
    if keep then
      local line = ARGV[i + 2]
      -- Most events are delivered at their first attempt, with no record
      -- yet: one command instead of reading and rewriting. Its record is
      -- attempt_record(1, 'delivered', line) spelled out: Lua formatting
      -- the number 1 costs more than the HSETNX (as does any general
      -- formatter in attempt_record, measured: 1.6k-2.3k instructions per
      -- entry against none).
      if redis.call('HSETNX', attempts, id, '1\ndelivered\n' .. line) == 0 then
        local made, _, history = parse_attempts(redis.call('HGET', attempts, id))
        redis.call('HSET', attempts, id, attempt_record(made + 1, 'delivered', history .. line))
      end
    end
  end
end
if #ids == 0 then return 0 end
local acked = redis.call('XACK', stream, group, unpack(ids))
if not keep then redis.call('HDEL', attempts, unpack(ids)) end
if delivered > 0 then
  redis.call('HSET', state, 'failures', 0, 'last_ok', now_ms())
  redis.call('HDEL', state, 'breaker', 'open_until', 'probe_until', 'cooldown')
  redis.call('HINCRBY', counters, 'delivered', delivered)
  for b = 5, 4 + 2 * buckets, 2 do
    redis.call('HINCRBY', counters, ARGV[b], tonumber(ARGV[b + 1]))
  end
  redis.call('EXPIRE', counters, ARGV[3], 'NX')
end
if not keep then
  local groups = groups_of(stream)
  local gone = {}
  for _, id in ipairs(ids) do
    if done_elsewhere(stream, groups, group, id) then gone[#gone + 1] = id end
  end
  if #gone > 0 then redis.call('XDEL', stream, unpack(gone)) end
end
return acked
