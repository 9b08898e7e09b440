#!lua flags=no-writes
-- Queue depths of a source and each of its destinations, for /health, the
-- admin API and the gauges, in one round trip.
-- KEYS[1] stream, KEYS[2] dlq, KEYS[3] dlq counts hash, KEYS[3 + i] retry
-- zset of destination i
-- ARGV destination names, in the order of their KEYS
-- Returns {dlq length, {name, unread (-1 unknown), pending, retrying, dlq,
-- oldest undelivered id or ''}... per destination, then {name, unread,
-- pending, ms since its freshest reader read (-1 none)} of every group no
-- destination named}
local stream = KEYS[1]
local groups = groups_of(stream)
local named = {}
local out = {redis.call('XLEN', KEYS[2])}
local function unread(g)
  if g.lag then return g.lag end
  return -1
end
for i, name in ipairs(ARGV) do
  named[name] = true
  local g = groups[name]
  local row = {name, 0, 0, redis.call('ZCARD', KEYS[3 + i]),
    tonumber(redis.call('HGET', KEYS[3], name) or '0'), ''}
  if g then
    row[2] = unread(g)
    row[3] = g.pending
    -- The oldest entry this destination has not finished: its oldest
    -- pending one, or the first it has not read.
    local oldest = ''
    local summary = redis.call('XPENDING', stream, name)
    if summary[2] then oldest = summary[2] end
    local first = redis.call('XRANGE', stream, '(' .. g.last, '+', 'COUNT', 1)
    if first[1] and (oldest == '' or not id_le(oldest, first[1][1])) then oldest = first[1][1] end
    row[6] = oldest
  end
  out[#out + 1] = row
end
for name, g in pairs(groups) do
  if not named[name] then
    -- How long ago its most recent reader read or claimed (-1: it has
    -- none): another instance, on a configuration that names this
    -- destination, may still be reading it.
    local freshest = -1
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', stream, name)) do
      for i = 1, #c, 2 do
        if c[i] == 'idle' and (freshest < 0 or c[i + 1] < freshest) then freshest = c[i + 1] end
      end
    end
    out[#out + 1] = {name, unread(g), g.pending, freshest}
  end
end
return out
