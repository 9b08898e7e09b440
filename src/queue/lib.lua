-- Helpers shared by the scripts that finish an entry or walk a stream
-- (written after each script's shebang line by queue/scripts.rs).

-- A stream id as two numbers (ms, seq): ms fit a double exactly.
local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function id_le(a, b)
  local am, as = id_parts(a)
  local bm, bs = id_parts(b)
  return am < bm or (am == bm and as <= bs)
end

-- The stream's consumer groups: name -> {last = last-delivered-id,
-- pending = n, lag = n or nil}. Empty when the stream does not exist.
local function groups_of(stream)
  local ok, reply = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  local out = {}
  if not ok then return out end
  for _, g in ipairs(reply) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    out[f['name']] = {last = f['last-delivered-id'], pending = f['pending'], lag = f['lag']}
  end
  return out
end

-- Whether every group but `mine` is done with entry `id`: it has read past
-- it and does not hold it pending. An entry done for every group leaves
-- the stream.
local function done_elsewhere(stream, groups, mine, id)
  for name, g in pairs(groups) do
    if name ~= mine then
      if not id_le(id, g.last) then return false end
      if #redis.call('XPENDING', stream, name, id, id, 1) > 0 then return false end
    end
  end
  return true
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A destination's record of an entry: "made\noutcome\nhistory", where
-- outcome is '' while it is under way, 'delivered' or 'dead', and history
-- holds one line per attempt. Returns made, outcome, history (always ''
-- with `without_history`: cutting it out copies it).
local function parse_attempts(record, without_history)
  if not record then return 0, '', '' end
  local a = string.find(record, '\n', 1, true)
  if not a then return tonumber(record) or 0, '', '' end
  local made = tonumber(string.sub(record, 1, a - 1)) or 0
  local b = string.find(record, '\n', a + 1, true)
  if without_history then
    if not b then return made, '', '' end
    return made, string.sub(record, a + 1, b - 1), ''
  end
  if not b then return made, '', string.sub(record, a + 1) end
  return made, string.sub(record, a + 1, b - 1), string.sub(record, b + 1)
end

-- Lines of an attempt record's history: one per attempt made, the
-- breaker's probes included, where its `made` counts only those held
-- against max_attempts.
local function history_lines(record)
  if not record then return 0 end
  local _, newlines = string.gsub(record, '\n', '\n')
  return math.max(0, newlines - 2)
end

-- Attempts made at an entry, probes included: the next attempt is
-- numbered after them, and the event log counts them. A record without
-- history lines is its count alone.
local function attempts_tried(record)
  return math.max(parse_attempts(record, true), history_lines(record))
end

local function attempt_record(made, outcome, history)
  return made .. '\n' .. outcome .. '\n' .. history
end

-- The fields of a stored event worth copying (to the DLQ, or back for a
-- replay): what the event is, not where it has been.
local STORED = {id = true, type = true, ct = true, hdr = true, body = true, rcv = true, of = true}
local function stored_fields(src)
  local fields = {}
  for i = 1, #src, 2 do
    if STORED[src[i]] then
      fields[#fields + 1] = src[i]
      fields[#fields + 1] = src[i + 1]
    end
  end
  return fields
end

-- Appends an event to a source's stream and its id to the stream's ids
-- list, where trim.lua finds the oldest entries without reading them.
-- Replays and the migration append this way; ingest.lua lists its batch
-- with one RPUSH, and none while the source keeps no event log (trimming
-- then drops what replays listed as the entries go).
local function append_entry(stream, ids, fields)
  local id = redis.call('XADD', stream, '*', unpack(fields))
  redis.call('RPUSH', ids, id)
  return id
end

-- One dead-lettered entry of `dest` fewer; never below zero, so entries
-- written behind hookd's back cannot turn a count negative.
local function uncount(counts, dest)
  if tonumber(redis.call('HGET', counts, dest) or 0) > 0 then
    redis.call('HINCRBY', counts, dest, -1)
  end
end

-- Walks a stream newest first from `upper` down to `lower` (inclusive ids,
-- or '+'/'-'), calling visit(entry) until `most` visits returned true or
-- `count` entries were looked at. It reads in chunks sized to the matches
-- still wanted: a page whose filter matches every entry reads only the
-- entries it returns, a sparse filter reads ahead in larger chunks.
-- Returns entries examined, the last examined id ('' if none), and 1 if
-- entries may remain below it.
local function walk_newest_first(stream, upper, lower, count, most, visit)
  local examined, matched, last = 0, 0, ''
  local from = upper
  while examined < count and matched < most do
    local chunk = math.min(count - examined, math.max(most - matched, 32))
    local entries = redis.call('XREVRANGE', stream, from, lower, 'COUNT', chunk)
    for _, entry in ipairs(entries) do
      examined = examined + 1
      last = entry[1]
      if visit(entry) then matched = matched + 1 end
      if matched >= most then return examined, last, 1 end
    end
    if #entries < chunk then return examined, last, 0 end
    from = '(' .. last
  end
  return examined, last, 1
end
