#!lua flags=no-writes,allow-stale
-- The health check's script: it writes nothing, so a Redis at maxmemory
-- runs it too. KEYS[1] is `{prefix}:probe`, never written: it stands for
-- every key hookd uses, so that Redis checks hookd's user may use keys
-- under the prefix. A user that may PING but not run scripts, or not on
-- those keys, gets NOPERM for this script itself; one that may run
-- scripts but not every command hookd runs (in its scripts or on its
-- own) gets NOPERM naming the command here, instead of on every event or
-- only in the workers that use it.
local probe = KEYS[1]
-- Each command hookd sends, as it sends it (a unit test keeps this list
-- in step with the scripts).
local needs = {
  {'DEL', probe}, {'EXISTS', probe}, {'EXPIRE', probe, '1'},
  {'PEXPIRE', probe, '1'}, {'GET', probe}, {'SET', probe, 'v', 'NX'},
  {'HDEL', probe, 'f'}, {'HEXISTS', probe, 'f'}, {'HGET', probe, 'f'},
  {'HGETALL', probe}, {'HINCRBY', probe, 'f', '1'}, {'HMGET', probe, 'f'},
  {'HSET', probe, 'f', 'v'}, {'HSETNX', probe, 'f', 'v'}, {'HVALS', probe},
  {'LINDEX', probe, '0'}, {'LRANGE', probe, '0', '1'},
  {'LTRIM', probe, '0', '1'}, {'RPUSH', probe, 'v'},
  {'ZADD', probe, '1', 'm'}, {'ZCARD', probe}, {'ZRANGE', probe, '0', '1'},
  {'ZRANGEBYSCORE', probe, '0', '1'}, {'ZREM', probe, 'm'},
  {'ZSCORE', probe, 'm'},
  {'XADD', probe, '*', 'f', 'v'}, {'XACK', probe, 'g', '0-1'},
  {'XAUTOCLAIM', probe, 'g', 'c', '0', '0-0'},
  {'XCLAIM', probe, 'g', 'c', '0', '0-1'}, {'XDEL', probe, '0-1'},
  {'XGROUP', 'CREATE', probe, 'g', '$', 'MKSTREAM'},
  {'XGROUP', 'DESTROY', probe, 'g'}, {'XINFO', 'CONSUMERS', probe, 'g'},
  {'XINFO', 'GROUPS', probe}, {'XLEN', probe},
  {'XPENDING', probe, 'g', '-', '+', '1'}, {'XRANGE', probe, '-', '+'},
  {'XREVRANGE', probe, '+', '-'}, {'XTRIM', probe, 'MINID', '0-1'},
  {'XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', '1', 'STREAMS', probe, '>'},
  {'INFO', 'memory'}, {'TIME'}, {'SCAN', '0'}, {'SCRIPT', 'LOAD', 'return 1'},
}
for _, command in ipairs(needs) do
  if not redis.acl_check_cmd(unpack(command)) then
    local name = command[1]
    if name == 'XGROUP' or name == 'XINFO' or name == 'SCRIPT' then
      name = name .. ' ' .. command[2]
    end
    return redis.error_reply("NOPERM this user may not run '" .. name ..
      "' on hookd's keys (under the key prefix)")
  end
end
-- A replica answers PING and runs this script, yet refuses every write
-- (a reader endpoint, or a primary demoted in a failover): it answers
-- READONLY here, as its writes would.
local replication = redis.call('INFO', 'replication')
if string.find(replication, 'role:slave', 1, true) then
  return redis.error_reply('READONLY this Redis is a replica: hookd writes to its primary')
end
return 1
