#!lua flags=allow-oom
-- Dead-letter: move the entry, byte-exact, from the stream to the DLQ
-- stream with why it died.
-- KEYS[1] stream, KEYS[2] dlq
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] reason, ARGV[4] last status,
-- ARGV[5] last error, ARGV[6] history line, ARGV[7] "1" if this was an attempt
-- Returns 1 if moved, 0 if the entry was already gone.
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if #entry == 0 then
  return 0
end
local fields = entry[1][2]
local has_log = false
for i = 1, #fields, 2 do
  if fields[i] == 'att' and ARGV[7] == '1' then
    fields[i + 1] = tostring(tonumber(fields[i + 1]) + 1)
  elseif fields[i] == 'log' then
    fields[i + 1] = fields[i + 1] .. ARGV[6]
    has_log = true
  end
end
if not has_log then
  table.insert(fields, 'log'); table.insert(fields, ARGV[6])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, v in ipairs({'reason', ARGV[3], 'status', ARGV[4], 'error', ARGV[5],
                    'dead_at', tostring(now), 'entry', ARGV[2]}) do
  table.insert(fields, v)
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
