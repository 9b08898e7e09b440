#!lua flags=allow-oom
-- Ack: a delivered entry leaves the group's pending list and the stream, so
-- the stream only ever holds undelivered work (XLEN is the backlog).
-- KEYS[1] stream; ARGV[1] group, ARGV[2..] entry ids
-- Returns the number of entries acknowledged.
local ids = {unpack(ARGV, 2)}
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked
