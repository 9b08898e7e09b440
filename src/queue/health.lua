#!lua flags=no-writes,allow-stale
-- The health check's script: it writes nothing, so a Redis at maxmemory
-- runs it too. KEYS[1] is `{prefix}:probe`, named only so that Redis
-- checks hookd's user may use keys under the prefix: a user that may PING
-- but not run scripts, or not on those keys, gets NOPERM here instead of
-- on every event. A replica answers PING and runs this script, yet
-- refuses every write (a reader endpoint, or a primary demoted in a
-- failover): it answers READONLY here, as its writes would.
local replication = redis.call('INFO', 'replication')
if string.find(replication, 'role:slave', 1, true) then
  return redis.error_reply('READONLY this Redis is a replica: hookd writes to its primary')
end
return 1
