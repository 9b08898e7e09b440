#!lua flags=no-writes
-- One step of a filtered walk through a DLQ, newest first. Only the
-- matches' metadata leaves Redis: bodies and headers stay behind, so an
-- operator's filter over a large DLQ costs Redis time, not network.
-- KEYS[1] dlq, KEYS[2] heir record (the destination of entries naming none)
-- ARGV[1] upper end of the range ("+" or an id, inclusive), ARGV[2] entries
-- to examine, ARGV[3] event type ('' = any), ARGV[4] reason ('' = any),
-- ARGV[5] destination ('' = any), ARGV[6] most matches to return (the
-- walk stops there, so a page never examines what it will not show)
-- Returns {entries examined, last examined id or '',
--          {dlq id, event id, type, reason, status, error, attempts,
--           received ms, dead at ms, body bytes, destination}...,
--          1 if entries may remain below the last examined, else 0}
local heir = redis.call('GET', KEYS[2]) or ''
local entries = redis.call('XREVRANGE', KEYS[1], ARGV[1], '-', 'COUNT', tonumber(ARGV[2]))
local matches = {}
local last = ''
local most = tonumber(ARGV[6])
local examined = 0
for _, entry in ipairs(entries) do
  if #matches >= most then break end
  examined = examined + 1
  last = entry[1]
  local f = {}
  local fields = entry[2]
  for i = 1, #fields, 2 do
    f[fields[i]] = fields[i + 1]
  end
  local dest = f['dest'] or heir
  if (ARGV[3] == '' or f['type'] == ARGV[3]) and (ARGV[4] == '' or f['reason'] == ARGV[4])
      and (ARGV[5] == '' or dest == ARGV[5]) then
    matches[#matches + 1] = {entry[1], f['id'] or '', f['type'] or '', f['reason'] or '',
      f['status'] or '', f['error'] or '', f['att'] or '0', f['rcv'] or '0',
      f['dead_at'] or '0', string.len(f['body'] or ''), dest}
  end
end
local more = 0
if examined < #entries or #entries >= tonumber(ARGV[2]) then more = 1 end
return {examined, last, matches, more}
