#!lua flags=no-writes
-- The breaker and pause state of a source's destinations, which every
-- instance reads a few times a second and obeys.
-- KEYS state hash of each destination
-- Returns per destination {paused, breaker, open_until, probe_until,
-- failures, last_ok, last_fail, last_status} ('' where unset)
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'paused', 'breaker', 'open_until', 'probe_until',
    'failures', 'last_ok', 'last_fail', 'last_status')
  for j = 1, 8 do if not v[j] then v[j] = '' end end
  out[i] = v
end
return out
