#!lua flags=no-writes
-- One step of a filtered walk through a DLQ, newest first. Only the
-- matches' metadata leaves Redis: bodies and headers stay behind, so an
-- operator's filter over a large DLQ costs Redis time, not network.
-- KEYS[1] dlq, KEYS[2] heir record (the destination of entries naming none)
-- ARGV[1] upper end of the range ("+" or an id, inclusive), ARGV[2] entries
-- to examine, ARGV[3] event type ('' = any), ARGV[4] reason ('' = any),
-- ARGV[5] destination ('' = any), ARGV[6] most matches to return (the
-- walk stops there, so a page never examines what it will not show),
-- ARGV[7] 'refs' to return only each match's dlq id and destination (what
-- a bulk replay or purge acts on), else 'rows'
-- Returns {entries examined, last examined id or '',
--          {dlq id, event id, type, reason, status, error, attempts,
--           received ms, dead at ms, body bytes, destination}...
--          (or {dlq id, destination}... for 'refs'),
--          1 if entries may remain below the last examined, else 0}
local heir = redis.call('GET', KEYS[2]) or ''
local matches = {}
local want_type, want_reason, want_dest = ARGV[3], ARGV[4], ARGV[5]
local refs = ARGV[7] == 'refs'
local examined, last, more = walk_newest_first(KEYS[1], ARGV[1], '-', tonumber(ARGV[2]),
  tonumber(ARGV[6]), function(entry)
    local f = {}
    local fields = entry[2]
    for i = 1, #fields, 2 do
      f[fields[i]] = fields[i + 1]
    end
    local dest = f['dest'] or heir
    if (want_type == '' or f['type'] == want_type) and (want_reason == '' or f['reason'] == want_reason)
        and (want_dest == '' or dest == want_dest) then
      if refs then
        matches[#matches + 1] = {entry[1], dest}
        return true
      end
      matches[#matches + 1] = {entry[1], f['id'] or '', f['type'] or '', f['reason'] or '',
        f['status'] or '', f['error'] or '', f['att'] or '0', f['rcv'] or '0',
        f['dead_at'] or '0', string.len(f['body'] or ''), dest}
      return true
    end
    return false
  end)
return {examined, last, matches, more}
