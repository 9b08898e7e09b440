#!lua
-- Ingest a batch (group commit, see ingest.rs): for each event, de-duplicate
-- and append in one atomic step, so a dedup key never exists without its
-- stream entry (and vice versa). A batch of one is the plain case.
-- KEYS[1] stream, KEYS[2] delayed, KEYS[2 + i] seen:<event id> of event i
-- ARGV[1] dedup ttl (s), ARGV[2] max backlog, then per event six items:
--   event id, event type, content type ('' = none), headers, body,
--   received unix ms
-- The entry's field names (queue.rs `field`) are written here rather than
-- sent with every event: they would double the items each call carries.
-- Returns, per event in order, two items:
--   "dup", first entry id | "full", backlog | "ok", entry id
local max_backlog = tonumber(ARGV[2])
local backlog = nil
local out = {}
local at = 3
for i = 3, #KEYS do
  local seen = redis.call('GET', KEYS[i])
  if seen then
    out[#out + 1] = 'dup'
    out[#out + 1] = seen
  else
    if backlog == nil then
      backlog = redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
    end
    if backlog >= max_backlog then
      out[#out + 1] = 'full'
      out[#out + 1] = tostring(backlog)
    else
      local id
      if ARGV[at + 2] == '' then
        id = redis.call('XADD', KEYS[1], '*', 'id', ARGV[at], 'type', ARGV[at + 1],
          'hdr', ARGV[at + 3], 'body', ARGV[at + 4], 'rcv', ARGV[at + 5], 'att', '0')
      else
        id = redis.call('XADD', KEYS[1], '*', 'id', ARGV[at], 'type', ARGV[at + 1],
          'ct', ARGV[at + 2], 'hdr', ARGV[at + 3], 'body', ARGV[at + 4],
          'rcv', ARGV[at + 5], 'att', '0')
      end
      redis.call('SET', KEYS[i], id, 'EX', ARGV[1])
      backlog = backlog + 1
      out[#out + 1] = 'ok'
      out[#out + 1] = id
    end
  end
  at = at + 6
end
return out
