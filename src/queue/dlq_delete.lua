#!lua flags=allow-oom
-- Delete DLQ entries, keeping each destination's count.
-- KEYS[1] dlq, KEYS[2] dlq counts hash, KEYS[3] heir record; ARGV dlq ids
-- Returns how many were there.
local heir = redis.call('GET', KEYS[3])
local deleted = 0
for _, id in ipairs(ARGV) do
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  if #entry > 0 then
    local src = entry[1][2]
    local dest = heir
    for i = 1, #src, 2 do if src[i] == 'dest' then dest = src[i + 1] end end
    redis.call('XDEL', KEYS[1], id)
    if dest then uncount(KEYS[2], dest) end
    deleted = deleted + 1
  end
end
return deleted
