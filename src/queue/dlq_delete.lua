#!lua flags=allow-oom
-- Delete DLQ entries, keeping each destination's count.
-- KEYS[1] dlq, KEYS[2] dlq counts hash, KEYS[3] heir record
-- ARGV pairs of dlq id and the destination it died for, '' when the caller
-- does not know it (the entry is then read; entries are never changed, so
-- a destination a scan read is still right)
-- Returns how many were there.
local heir = redis.call('GET', KEYS[3])
local deleted = 0
for i = 1, #ARGV, 2 do
  local id, dest = ARGV[i], ARGV[i + 1]
  if dest == '' then
    dest = heir
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry > 0 then
      local src = entry[1][2]
      for j = 1, #src, 2 do if src[j] == 'dest' then dest = src[j + 1] end end
    end
  end
  if redis.call('XDEL', KEYS[1], id) == 1 then
    if dest then uncount(KEYS[2], dest) end
    deleted = deleted + 1
  end
end
return deleted
