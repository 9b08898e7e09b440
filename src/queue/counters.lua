#!lua flags=no-writes
-- The per-minute counters of a source, for the charts: every hash given,
-- in order (an empty list for a minute nothing happened in).
-- KEYS the minutes' counters hashes
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HGETALL', key)
end
return out
