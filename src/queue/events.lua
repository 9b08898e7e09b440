#!lua flags=no-writes
-- One step of a filtered walk through the event log (the stream), newest
-- first, with each destination's status of every entry. Only the matches'
-- metadata leaves Redis unless the detail of one entry is asked for.
-- KEYS[1] stream, then per destination (in ARGV's order) its retry zset,
-- attempts hash and state hash
-- ARGV[1] upper end ('+' or an id, inclusive), ARGV[2] lower end ('-' or an
-- id, inclusive), ARGV[3] entries to examine, ARGV[4] most matches,
-- ARGV[5] event type ('' = any), ARGV[6] status ('' = any), ARGV[7]
-- destination ('' = any), ARGV[8] '1' to return bodies, headers and
-- attempt histories, ARGV[9..] the destinations
-- Status of an entry for a destination: delivered | dead (its record says
-- so), retrying (waiting for a retry after a failed attempt), in_flight
-- (handed out), queued (not yet read, or set aside unattempted), filtered
-- (done with it without a delivery: its filter did not match), paused
-- (queued or retrying while the destination is paused). A replay copy
-- addressed to one destination has a status for that one only.
-- Returns {examined, last examined id or '', 1 if entries may remain below
-- it, {entry id, event id, type, received ms, body bytes, to, of,
-- {destination, status, attempts made[, history]}...[, content type,
-- headers, body]}...}
local stream = KEYS[1]
local upper, lower = ARGV[1], ARGV[2]
local count, most = tonumber(ARGV[3]), tonumber(ARGV[4])
local want_type, want_status, want_dest = ARGV[5], ARGV[6], ARGV[7]
local detail = ARGV[8] == '1'
local groups = groups_of(stream)
local dests = {}
for i = 9, #ARGV do
  local k = 2 + (i - 9) * 3
  local name = ARGV[i]
  dests[#dests + 1] = {
    name = name, retry = KEYS[k], attempts = KEYS[k + 1],
    paused = redis.call('HEXISTS', KEYS[k + 2], 'paused') == 1,
    group = groups[name],
  }
end

local function status_of(d, id)
  local record = redis.call('HGET', d.attempts, id)
  local counted, outcome, history = parse_attempts(record, not detail)
  -- What the history shows, the breaker's probes included.
  local made = math.max(counted, history_lines(record))
  if outcome == 'delivered' or outcome == 'dead' then return outcome, made, history end
  local waiting = nil
  if redis.call('ZSCORE', d.retry, id) then
    if made > 0 then waiting = 'retrying' else waiting = 'queued' end
  elseif not d.group or not id_le(id, d.group.last) then
    waiting = 'queued'
  elseif #redis.call('XPENDING', stream, d.name, id, id, 1) > 0 then
    return 'in_flight', made, history
  else
    return 'filtered', made, history
  end
  if d.paused then return 'paused', made, history end
  return waiting, made, history
end

-- Each destination's status of the entry being visited, by destination
-- index (nil: the entry is not for it), reused from entry to entry; the
-- entry's fields are read into locals. Tables built for every entry made
-- the visit of an entry that does not match 45% dearer (5,000 entries:
-- 8.3 ms against 5.7 ms, besides the 14 ms of reading them).
local statuses, mades, histories = {}, {}, {}

local matches = {}
local examined, last, more = walk_newest_first(stream, upper, lower, count, most, function(entry)
  local fields = entry[2]
  local id, kind, rcv, body, to, of, ct, hdr
  for i = 1, #fields, 2 do
    local name, value = fields[i], fields[i + 1]
    if name == 'type' then kind = value
    elseif name == 'id' then id = value
    elseif name == 'rcv' then rcv = value
    elseif name == 'body' then body = value
    elseif name == 'to' then to = value
    elseif name == 'of' then of = value
    elseif name == 'ct' then ct = value
    elseif name == 'hdr' then hdr = value
    end
  end
  if want_type ~= '' and kind ~= want_type then return false end
  local hit = want_status == '' and want_dest == ''
  for k, d in ipairs(dests) do
    statuses[k] = nil
    if not to or to == d.name then
      local status, made, history = status_of(d, entry[1])
      statuses[k], mades[k], histories[k] = status, made, history
      if (want_dest == '' or want_dest == d.name) and (want_status == '' or want_status == status) then
        hit = true
      end
    end
  end
  if not hit then return false end
  local rows = {}
  for k, d in ipairs(dests) do
    if statuses[k] then
      local row = {d.name, statuses[k], mades[k]}
      if detail then row[4] = histories[k] end
      rows[#rows + 1] = row
    end
  end
  local m = {entry[1], id or '', kind or '', rcv or '0',
    string.len(body or ''), to or '', of or '', rows}
  if detail then
    m[9] = ct or ''
    m[10] = hdr or ''
    m[11] = body or ''
  end
  matches[#matches + 1] = m
  return true
end)
return {examined, last, more, matches}
