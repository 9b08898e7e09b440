#!lua
-- Replay dead-lettered entries: each back into the stream with attempts
-- reset, removed from the DLQ in the same step, so replaying twice cannot
-- enqueue an event twice.
-- KEYS[1] stream, KEYS[2] dlq; ARGV dlq entry ids
-- Returns, per id in order, the new stream entry id, or false if that DLQ
-- entry is gone.
local keep = {id = true, type = true, ct = true, hdr = true, body = true, rcv = true}
local out = {}
for n, dlq_id in ipairs(ARGV) do
  local entry = redis.call('XRANGE', KEYS[2], dlq_id, dlq_id)
  if #entry == 0 then
    out[n] = false
  else
    local src = entry[1][2]
    local fields = {}
    for i = 1, #src, 2 do
      if keep[src[i]] then
        table.insert(fields, src[i]); table.insert(fields, src[i + 1])
      end
    end
    table.insert(fields, 'att'); table.insert(fields, '0')
    out[n] = redis.call('XADD', KEYS[1], '*', unpack(fields))
    redis.call('XDEL', KEYS[2], dlq_id)
  end
end
return out
