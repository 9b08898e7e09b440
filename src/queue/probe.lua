#!lua
-- One probe at a time across every instance: once an open breaker's
-- cooldown is over, the first reader to ask gets it for `lease` ms and the
-- breaker is half open; the probe's outcome closes or reopens it.
-- KEYS[1] state hash; ARGV[1] lease (ms)
-- Returns 1 if this caller holds the probe, else 0.
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 'breaker', 'open_until', 'probe_until')
if not v[1] then return 0 end
if now < tonumber(v[2] or 0) then return 0 end
if v[3] and now < tonumber(v[3]) then return 0 end
redis.call('HSET', KEYS[1], 'breaker', 'half_open', 'probe_until', now + tonumber(ARGV[1]))
return 1
