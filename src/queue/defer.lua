#!lua
-- Entries a reader was handed but may not start: the destination was
-- paused, or its breaker opened, while the read was under way. They stay
-- pending for the group and wait in its retry set, due at once, with no
-- attempt counted; the reader takes them once the gate opens again.
-- KEYS[1] retry zset; ARGV entry ids
-- Returns how many were deferred.
local now = now_ms()
for _, id in ipairs(ARGV) do
  redis.call('ZADD', KEYS[1], 'NX', now, id)
end
return #ARGV
