#!lua flags=allow-oom
-- Remove, among the next entries of a stream, those every group is done
-- with (after a destination is forgotten, or a filter skipped them before
-- another group existed). Bounded per call; the caller walks on.
-- KEYS[1] stream; ARGV[1] exclusive start ('-' = the head), ARGV[2] count
-- Returns {entries examined, last examined id or '', deleted}
local start = ARGV[1]
if start ~= '-' then start = '(' .. start end
local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', tonumber(ARGV[2]))
local groups = groups_of(KEYS[1])
local gone = {}
local last = ''
for _, entry in ipairs(entries) do
  last = entry[1]
  if done_elsewhere(KEYS[1], groups, '', entry[1]) then gone[#gone + 1] = entry[1] end
end
if #gone > 0 then redis.call('XDEL', KEYS[1], unpack(gone)) end
return {#entries, last, #gone}
