#!lua
-- Replay a dead-lettered entry: back into the stream with attempts reset,
-- removed from the DLQ in the same step, so replaying twice cannot enqueue
-- it twice.
-- KEYS[1] stream, KEYS[2] dlq; ARGV[1] dlq entry id
-- Returns the new stream entry id, or false if the DLQ entry is gone.
local entry = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #entry == 0 then
  return false
end
local src = entry[1][2]
local keep = {id = true, type = true, ct = true, hdr = true, body = true, rcv = true}
local fields = {}
for i = 1, #src, 2 do
  if keep[src[i]] then
    table.insert(fields, src[i]); table.insert(fields, src[i + 1])
  end
end
table.insert(fields, 'att'); table.insert(fields, '0')
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('XDEL', KEYS[2], ARGV[1])
return id
