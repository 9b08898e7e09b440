#!lua
-- Ingest: de-duplicate and append in one atomic step, so a dedup key never
-- exists without its stream entry (and vice versa).
-- KEYS[1] stream, KEYS[2] seen:<event id>, KEYS[3] delayed
-- ARGV[1] dedup ttl (s), ARGV[2] max backlog, ARGV[3..] entry field/value pairs
-- Returns {"dup", first entry id} | {"full", backlog} | {"ok", entry id}
local first = redis.call('GET', KEYS[2])
if first then
  return {'dup', first}
end
local backlog = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[3])
if backlog >= tonumber(ARGV[2]) then
  return {'full', tostring(backlog)}
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
return {'ok', id}
