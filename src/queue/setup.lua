#!lua
-- Make every destination's consumer group exist; a new one starts with new
-- events ('$'). Run at startup, when ingest or a reader finds a group
-- missing, and after Redis lost its data.
-- A stream still read by the single-destination layout's group `hookd` is
-- migrated first: every entry in it is undelivered (that layout deleted an
-- entry once delivered), so the heir destination's group starts at '0'
-- and gets all of them; retries waiting in the old delayed set are
-- appended again for the heir alone (due at once); the old group goes.
-- A new destination added later starts at '$' like any other.
-- KEYS[1] stream, KEYS[2] the old layout's delayed zset, KEYS[3] dlq,
-- KEYS[4] dlq counts hash, KEYS[5] heir record (the destination old DLQ
-- entries, which name none, belong to), KEYS[6] the stream's ids list
-- ARGV[1] old group ('hookd'), ARGV[2] heir destination, ARGV[3..] destinations
-- Returns {events migrated, {groups created...}}
local stream = KEYS[1]
local legacy, heir = ARGV[1], ARGV[2]
-- A stream that is not there (new, or lost with Redis's data) starts a
-- new ids list: ids left from an earlier stream could sort after the new
-- stream's, and trim.lua relies on the list's order.
if redis.call('EXISTS', stream) == 0 then redis.call('DEL', KEYS[6]) end
local groups = groups_of(stream)
local created, migrated = {}, 0
if groups[legacy] and legacy ~= heir and not groups[heir] then
  redis.call('XGROUP', 'CREATE', stream, heir, '0')
  groups[heir] = true
  created[#created + 1] = heir
  redis.call('XGROUP', 'DESTROY', stream, legacy)
end
-- DLQ entries that name no destination (written by the single-destination
-- layout) belong to the heir; the first setup records which one it is and
-- counts them for it: every entry not yet counted names none.
if redis.call('SET', KEYS[5], heir, 'NX') then
  local counted = 0
  for _, n in ipairs(redis.call('HVALS', KEYS[4])) do counted = counted + tonumber(n) end
  local unnamed = redis.call('XLEN', KEYS[3]) - counted
  if unnamed > 0 then redis.call('HINCRBY', KEYS[4], heir, unnamed) end
end
for i = 3, #ARGV do
  if not groups[ARGV[i]] then
    redis.call('XGROUP', 'CREATE', stream, ARGV[i], '$', 'MKSTREAM')
    groups[ARGV[i]] = true
    created[#created + 1] = ARGV[i]
  end
end
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local _, src = cmsgpack.unpack(member)
  local fields = stored_fields(src)
  fields[#fields + 1] = 'to'
  fields[#fields + 1] = heir
  append_entry(stream, KEYS[6], fields)
  migrated = migrated + 1
end
redis.call('DEL', KEYS[2])
return {migrated, created}
