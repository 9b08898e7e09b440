#!lua
-- Ingest a batch (group commit, see ingest.rs): for each event, de-duplicate
-- and append in one atomic step, so a dedup key never exists without its
-- stream entry (and vice versa). A batch of one is the plain case. One copy
-- of each event; every destination reads it through its consumer group.
-- KEYS[1] stream, KEYS[2] this minute's counters hash, KEYS[3] the
-- stream's ids list (trim.lua), KEYS[3 + i] seen:<event id> of event i
-- ARGV[1] dedup ttl (s), ARGV[2] max backlog, ARGV[3] counters' time to
-- live (s), ARGV[4] '1' to list the new entries' ids (the source keeps an
-- event log; without one, acknowledgements delete entries and trimming
-- finds few), ARGV[5] n destinations, ARGV[6 .. 5 + n] their names (=
-- groups), then per event six items:
--   event id, event type, content type ('' = none), headers, body,
--   received unix ms
-- The entry's field names (queue/entry.rs `field`) are written here rather
-- than sent with every event: they would double the items each call carries.
-- Returns, per event in order, two items:
--   "dup", first entry id | "full", backlog | "ok", entry id
-- or {"setup"} when a destination's group does not exist yet (nothing is
-- written then; the caller creates the groups and sends the batch again).
local max_backlog = tonumber(ARGV[2])
local n = tonumber(ARGV[5])
local backlog = nil
local out = {}
local added = {}
local at = 6 + n
for i = 4, #KEYS do
  local seen = redis.call('GET', KEYS[i])
  if seen then
    out[#out + 1] = 'dup'
    out[#out + 1] = seen
  else
    if backlog == nil then
      -- The backlog is the largest of the destinations': what one of
      -- them has not finished (unread, in flight, waiting for a retry).
      local groups = groups_of(KEYS[1])
      backlog = 0
      for d = 6, 5 + n do
        local g = groups[ARGV[d]]
        if not g then return {'setup'} end
        local unread = g.lag
        if not unread then unread = redis.call('XLEN', KEYS[1]) end
        if unread + g.pending > backlog then backlog = unread + g.pending end
      end
    end
    if backlog >= max_backlog then
      out[#out + 1] = 'full'
      out[#out + 1] = tostring(backlog)
    else
      local id
      if ARGV[at + 2] == '' then
        id = redis.call('XADD', KEYS[1], '*', 'id', ARGV[at], 'type', ARGV[at + 1],
          'hdr', ARGV[at + 3], 'body', ARGV[at + 4], 'rcv', ARGV[at + 5])
      else
        id = redis.call('XADD', KEYS[1], '*', 'id', ARGV[at], 'type', ARGV[at + 1],
          'ct', ARGV[at + 2], 'hdr', ARGV[at + 3], 'body', ARGV[at + 4],
          'rcv', ARGV[at + 5])
      end
      redis.call('SET', KEYS[i], id, 'EX', ARGV[1])
      backlog = backlog + 1
      added[#added + 1] = id
      out[#out + 1] = 'ok'
      out[#out + 1] = id
    end
  end
  at = at + 6
end
if #added > 0 then
  if ARGV[4] == '1' then redis.call('RPUSH', KEYS[3], unpack(added)) end
  redis.call('HINCRBY', KEYS[2], 'accepted', #added)
  redis.call('EXPIRE', KEYS[2], ARGV[3], 'NX')
end
return out
