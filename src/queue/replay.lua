#!lua
-- Replay dead-lettered entries, each to the destination it died for: a
-- copy of the event goes back into the stream addressed to that
-- destination alone ('to'; the others skip it), with attempts reset; the
-- DLQ entry goes in the same step, so replaying twice cannot enqueue an
-- event twice.
-- KEYS[1] stream, KEYS[2] dlq, KEYS[3] dlq counts hash, KEYS[4] heir record,
-- KEYS[5] the stream's ids list
-- ARGV dlq entry ids
-- Returns, per id in order, the new stream entry id, or false if that DLQ
-- entry is gone.
local heir = redis.call('GET', KEYS[4])
local out = {}
for n, dlq_id in ipairs(ARGV) do
  local entry = redis.call('XRANGE', KEYS[2], dlq_id, dlq_id)
  if #entry == 0 then
    out[n] = false
  else
    local src = entry[1][2]
    local f = {}
    for i = 1, #src, 2 do f[src[i]] = src[i + 1] end
    local dest = f['dest'] or heir
    local fields = stored_fields(src)
    if not f['of'] and f['entry'] then
      fields[#fields + 1] = 'of'
      fields[#fields + 1] = f['entry']
    end
    if dest then
      fields[#fields + 1] = 'to'
      fields[#fields + 1] = dest
      uncount(KEYS[3], dest)
    end
    out[n] = append_entry(KEYS[1], KEYS[5], fields)
    redis.call('XDEL', KEYS[2], dlq_id)
  end
end
return out
