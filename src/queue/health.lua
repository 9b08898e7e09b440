#!lua flags=no-writes,allow-stale
-- The health check's script: it reads and writes nothing, so a replica or
-- a Redis at maxmemory runs it too. KEYS[1] is `{prefix}:probe`, named
-- only so that Redis checks hookd's user may use keys under the prefix: a
-- user that may PING but not run scripts, or not on those keys, gets
-- NOPERM here instead of on every event.
return 1
