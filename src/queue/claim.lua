#!lua flags=allow-oom
-- Take over entries another consumer left pending longer than min-idle (a
-- crashed or partitioned process), with their delivery counts so the caller
-- can stop crash loops. Entries waiting in the retry set are not abandoned:
-- they stay where they are.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] attempts hash
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle (ms), ARGV[4] cursor,
-- ARGV[5] count
-- Returns {next cursor, {{id, fields, deliveries, attempts made (probes
-- too)}...}, deleted count}
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  'COUNT', ARGV[5], 'JUSTID')
local out = {}
for _, id in ipairs(r[2]) do
  if not redis.call('ZSCORE', KEYS[2], id) then
    local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)
    if claimed[1] and claimed[1][2] then
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
      local deliveries = 1
      if p[1] then deliveries = p[1][4] end
      local made = attempts_tried(redis.call('HGET', KEYS[3], id))
      out[#out + 1] = {id, claimed[1][2], deliveries, made}
    end
  end
end
local deleted = 0
if r[3] then deleted = #r[3] end
return {r[1], out, deleted}
