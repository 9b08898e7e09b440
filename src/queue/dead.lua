#!lua flags=allow-oom
-- Dead-letter an entry for one destination: a copy goes to the source's
-- DLQ naming the destination, with why and every attempt; the group is
-- done with it, and so is the stream once every group is.
-- KEYS[1] stream, KEYS[2] dlq, KEYS[3] retry zset, KEYS[4] attempts hash,
-- KEYS[5] state hash, KEYS[6] dlq counts hash, KEYS[7] this minute's
-- counters hash
-- ARGV[1] group (= destination), ARGV[2] entry id, ARGV[3] reason,
-- ARGV[4] last status, ARGV[5] last error, ARGV[6] history line of this
-- step ('' = already recorded), ARGV[7] '1' if this step was a counted
-- attempt, ARGV[8] '1' if the destination answered (it is up), ARGV[9]
-- '1' to keep the attempt record (event log on), ARGV[10] counters' time
-- to live (s)
-- Returns 1 if moved, 0 if the entry was already gone or not pending here.
local stream, dlq, retry, attempts, state, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local group, id = ARGV[1], ARGV[2]
local entry = redis.call('XRANGE', stream, id, id)
local acked = redis.call('XACK', stream, group, id)
local made, _, history = parse_attempts(redis.call('HGET', attempts, id))
redis.call('ZREM', retry, id)
if #entry == 0 or acked == 0 then
  redis.call('HDEL', attempts, id)
  return 0
end
if ARGV[7] == '1' then made = made + 1 end
history = history .. ARGV[6]
local record = attempt_record(made, 'dead', history)
if ARGV[9] == '1' then
  redis.call('HSET', attempts, id, record)
else
  redis.call('HDEL', attempts, id)
end
local counters = KEYS[7]
redis.call('HINCRBY', counters, 'dead', 1)
if ARGV[7] == '1' then redis.call('HINCRBY', counters, 'failed', 1) end
redis.call('EXPIRE', counters, ARGV[10], 'NX')
local now = now_ms()
local fields = stored_fields(entry[1][2])
-- The DLQ counts every attempt its history lists, probes too.
for _, v in ipairs({'dest', group, 'att', tostring(attempts_tried(record)), 'log', history, 'reason', ARGV[3],
                    'status', ARGV[4], 'error', ARGV[5], 'dead_at', tostring(now), 'entry', id}) do
  fields[#fields + 1] = v
end
redis.call('XADD', dlq, '*', unpack(fields))
redis.call('HINCRBY', counts, group, 1)
if ARGV[8] == '1' then
  -- It answered: the destination is up, whatever it thought of the event.
  redis.call('HSET', state, 'failures', 0)
  redis.call('HDEL', state, 'breaker', 'open_until', 'probe_until', 'cooldown')
end
redis.call('HSET', state, 'last_fail', now, 'last_status', ARGV[4])
if ARGV[9] ~= '1' and done_elsewhere(stream, groups_of(stream), group, id) then
  redis.call('XDEL', stream, id)
end
return 1
