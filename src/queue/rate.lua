#!lua flags=allow-oom
-- A destination's rate_per_sec, shared by every instance: a token bucket
-- holding at most one second's worth, refilled by Redis's clock (so the
-- instances' clocks need not agree). allow-oom: at maxmemory deliveries
-- must go on, as they are what frees memory; the bucket is one small hash.
-- KEYS[1] the destination's bucket (hash: tokens, at = Redis time in µs)
-- ARGV[1] rate per second, ARGV[2] tokens wanted (negative: give back)
-- Returns {tokens granted, ms until the next token if none was granted}
local rate, want = tonumber(ARGV[1]), tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local capacity = math.max(rate, 1)
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]), tonumber(held[2])
if not tokens or not at or at > now then tokens, at = capacity, now end
tokens = math.min(capacity, tokens + (now - at) * rate / 1000000)
local granted, wait = 0, 0
if want < 0 then
  tokens = math.min(capacity, tokens - want)
elseif tokens >= 1 then
  granted = math.min(math.floor(tokens), want)
  tokens = tokens - granted
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%d', now))
-- An idle bucket refills to full within a second: it need not outlive that.
redis.call('PEXPIRE', KEYS[1], 10000)
return {granted, wait}
