#!lua flags=no-writes
-- Queue depths for /health and gauges, in one round trip.
-- KEYS[1] stream, KEYS[2] delayed, KEYS[3] dlq; ARGV[1] group
-- Returns {stream length, pending, delayed, dlq length, oldest entry id or ""}
local len = redis.call('XLEN', KEYS[1])
local pending = 0
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok and summary then pending = summary[1] end
local oldest = ''
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if first[1] then oldest = first[1][1] end
return {len, pending, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3]), oldest}
