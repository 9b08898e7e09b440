#!lua flags=allow-oom
-- The event log's retention, one bounded step: an entry leaves the stream
-- once every group is done with it (read past it, not pending) AND it is
-- outside the history (not among the max_events newest, or older than
-- max_age). An unfinished entry stays wherever it sits, so besides cutting
-- the finished head with one XTRIM, the step walks on past an unfinished
-- entry and deletes the finished ones behind it. Attempt records of the
-- entries that go are deleted with them.
-- The head's ids come from the stream's ids list (appended with every
-- entry), not from reading the head: Redis hands each entry to Lua whole,
-- which for 1 KiB events costs several times what deleting it does.
-- KEYS[1] stream, KEYS[2] its ids list, KEYS[3..] the destinations'
-- attempts hashes
-- ARGV[1] max events (0 = keep none), ARGV[2] max age (ms, 0 = keep none),
-- ARGV[3] most entries to examine, ARGV[4] share of maxmemory (percent)
-- from which the log keeps nothing finished
-- Returns {entries deleted, 1 if the budget ran out before the end,
-- 1 if the log was shed because Redis is near maxmemory}
local stream, ids_key = KEYS[1], KEYS[2]
local max_events, max_age, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local keep_none = max_events == 0 or max_age == 0

-- The log is a convenience; accepting events is the product. Near
-- maxmemory (where Redis would refuse ingest) finished events go whatever
-- the history says, until memory is below the mark again.
local shed = 0
if not keep_none then
  local info = redis.call('INFO', 'memory')
  local used = tonumber(string.match(info, 'used_memory:(%d+)'))
  local most = tonumber(string.match(info, 'maxmemory:(%d+)'))
  if used and most and most > 0 and used * 100 >= most * tonumber(ARGV[4]) then
    keep_none, shed = true, 1
  end
end
local remaining = redis.call('XLEN', stream)
if remaining == 0 then
  -- Whatever the ids list still holds was deleted already.
  redis.call('DEL', ids_key)
  return {0, 0, shed}
end
local groups = groups_of(stream)
if next(groups) == nil then return {0, 0, shed} end

local function successor(id)
  local ms, seq = id_parts(id)
  return string.format('%d-%d', ms, seq + 1)
end
local function id_lt(a, b) return not id_le(b, a) end

-- Everything below `bound` is done for every group: below each group's
-- oldest pending entry and at or below its last-delivered one. Nothing at
-- or above `read_bound` is: some group has not read it yet.
local bound, read_bound = nil, nil
for name, g in pairs(groups) do
  local b = successor(g.last)
  if not read_bound or id_lt(b, read_bound) then read_bound = b end
  if g.pending > 0 then
    local summary = redis.call('XPENDING', stream, name)
    if summary[2] and id_lt(summary[2], b) then b = summary[2] end
  end
  if not bound or id_lt(b, bound) then bound = b end
end

-- Entries below `age_cut` are outside history by age (nil: none is).
local cut_ms = now_ms() - max_age
local age_cut = nil
if cut_ms > 0 then age_cut = string.format('%d-0', cut_ms) end

-- `remaining` counts the entries from the one looked at to the newest:
-- it is among the max_events newest once that is at most max_events.
local function outside(id)
  if keep_none or remaining > max_events then return true end
  local ms = id_parts(id)
  return ms < cut_ms
end
local function forget_records(ids)
  for k = 3, #KEYS do redis.call('HDEL', KEYS[k], unpack(ids)) end
end

local deleted, examined = 0, 0
local CHUNK = 256

-- Cuts up to `want` of the oldest entries below `upper`, with their
-- records; returns how many it took (0: none is below `upper`). Their ids
-- come off the ids list, which holds every id appended since it exists,
-- in stream order (and ids already deleted further in, until they reach
-- its head). Entries older than the list's head (written before it
-- existed) are read from the stream.
local function cut_oldest(want, upper)
  local listed = redis.call('LINDEX', ids_key, 0)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  local ids, from_list
  if first and (not listed or id_lt(first[1], listed)) then
    local to = upper
    if listed and id_lt(listed, to) then to = listed end
    local entries = redis.call('XRANGE', stream, '-', '(' .. to, 'COUNT', want)
    ids, from_list = {}, false
    for k = 1, #entries do ids[k] = entries[k][1] end
  else
    ids, from_list = redis.call('LRANGE', ids_key, 0, want - 1), true
    -- In stream order (setup.lua starts a new list with a new stream):
    -- the ids below `upper` are a prefix, found by bisection.
    local below, above = 0, #ids
    while below < above do
      local mid = math.floor((below + above + 1) / 2)
      if id_lt(ids[mid], upper) then below = mid else above = mid - 1 end
    end
    for k = #ids, below + 1, -1 do ids[k] = nil end
  end
  local n = #ids
  if n == 0 then return 0 end
  -- Every entry up to the last id is among these (the list lacks none
  -- since it began), so one XTRIM takes exactly the live ones. (An older
  -- hookd writing beside this one, mid-upgrade, adds entries the list
  -- lacks: they go with the listed ones around them.)
  local gone = redis.call('XTRIM', stream, 'MINID', successor(ids[n]))
  if from_list then redis.call('LTRIM', ids_key, n, -1) end
  forget_records(ids)
  deleted, remaining = deleted + gone, remaining - gone
  return n
end

-- The finished head. Each cut asks only for entries outside history (the
-- oldest beyond max_events, then those older than max_age), so a log
-- within its bounds reads none, and none is read only to be kept.
local reached_bound = false
while examined < budget do
  local upper, want, by_age = bound, math.min(CHUNK, budget - examined), false
  if not keep_none then
    if remaining > max_events then
      want = math.min(want, remaining - max_events)
    elseif not age_cut then
      return {deleted, 0, shed}
    elseif id_lt(age_cut, bound) then
      upper, by_age = age_cut, true
    end
  end
  local n = cut_oldest(want, upper)
  examined = examined + n
  if n == 0 then
    -- Past the age cut everything is younger: inside history. At the
    -- bound the walk goes on past the oldest unfinished entry.
    if by_age then return {deleted, 0, shed} end
    reached_bound = true
    break
  end
end
if not reached_bound then return {deleted, 1, shed} end

-- Past the oldest unfinished entry, up to what every group has read:
-- finished ones outside history go one by one; unfinished ones stay.
if not id_lt(bound, read_bound) then return {deleted, 0, shed} end
local start = bound
while examined < budget do
  -- Within max_events only entries older than max_age can go: none is
  -- read past the age cut.
  local upper = read_bound
  if not keep_none and remaining <= max_events then
    if not age_cut then return {deleted, 0, shed} end
    if id_lt(age_cut, upper) then upper = age_cut end
  end
  local entries = redis.call('XRANGE', stream, start, '(' .. upper, 'COUNT', math.min(CHUNK, budget - examined))
  if #entries == 0 then return {deleted, 0, shed} end
  local ids = {}
  for _, e in ipairs(entries) do
    examined = examined + 1
    if not outside(e[1]) then
      if #ids > 0 then
        redis.call('XDEL', stream, unpack(ids))
        forget_records(ids)
      end
      return {deleted + #ids, 0, shed}
    end
    if done_elsewhere(stream, groups, '', e[1]) then ids[#ids + 1] = e[1] end
    -- Whether kept or not, the next entry has one fewer after it.
    remaining = remaining - 1
  end
  if #ids > 0 then
    redis.call('XDEL', stream, unpack(ids))
    forget_records(ids)
    deleted = deleted + #ids
  end
  start = '(' .. entries[#entries][1]
end
return {deleted, 1, shed}
