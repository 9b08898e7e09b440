#!lua flags=allow-oom
-- Take over entries another consumer left pending longer than min-idle
-- (a crashed or partitioned process), with their delivery counts so the
-- caller can stop crash loops.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle (ms),
-- ARGV[4] cursor, ARGV[5] count
-- Returns {next cursor, {{id, fields, deliveries}...}, deleted count}
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if e and e[1] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local deliveries = 1
    if p[1] then deliveries = p[1][4] end
    table.insert(out, {e[1], e[2], deliveries})
  end
end
local deleted = 0
if r[3] then deleted = #r[3] end
return {r[1], out, deleted}
