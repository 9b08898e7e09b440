#!lua flags=allow-oom
-- Schedule a retry: move the entry from the stream to the delayed set, due
-- at Redis' clock + delay, with its attempt count and history updated.
-- KEYS[1] stream, KEYS[2] delayed
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] delay (ms), ARGV[4] history line
-- Returns the due time (ms), or 0 if the entry was already gone.
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if #entry == 0 then
  return 0
end
local fields = entry[1][2]
local has_att, has_log = false, false
for i = 1, #fields, 2 do
  if fields[i] == 'att' then
    fields[i + 1] = tostring(tonumber(fields[i + 1]) + 1)
    has_att = true
  elseif fields[i] == 'log' then
    fields[i + 1] = fields[i + 1] .. ARGV[4]
    has_log = true
  end
end
if not has_att then
  table.insert(fields, 'att'); table.insert(fields, '1')
end
if not has_log then
  table.insert(fields, 'log'); table.insert(fields, ARGV[4])
end
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])
-- The original entry id keeps the member unique even for identical bodies.
redis.call('ZADD', KEYS[2], due, cmsgpack.pack(ARGV[2], fields))
redis.call('XDEL', KEYS[1], ARGV[2])
return due
