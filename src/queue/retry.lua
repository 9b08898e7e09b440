#!lua flags=allow-oom
-- A failed attempt for one destination: counted (unless it was the
-- breaker's probe), its history line kept, the entry left pending for the
-- group and due again in the destination's retry set. It feeds the
-- breaker: `failures` consecutive failed attempts, or a failed probe, open
-- it. An event whose every attempt failed within one unbroken streak of
-- the destination's is not dead-lettered when the breaker is on: the
-- service is down, not the event poison, so the breaker opens and the
-- event waits.
-- KEYS[1] stream, KEYS[2] retry zset, KEYS[3] attempts hash, KEYS[4] state
-- hash, KEYS[5] this minute's counters hash
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] delay (ms), ARGV[4] history line,
-- ARGV[5] HTTP status ('' = none), ARGV[6] max attempts, ARGV[7] breaker
-- failures (0 = off), ARGV[8] cooldown (ms), ARGV[9] max cooldown (ms),
-- ARGV[10] '1' if this attempt was the probe, ARGV[11] counters' time to
-- live (s)
-- Returns {'retry', due ms, open until ms (0: the breaker is closed)} |
--   {'dead', attempts made} | {'gone'}
local stream, retry, attempts, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, id = ARGV[1], ARGV[2]
if #redis.call('XPENDING', stream, group, id, id, 1) == 0 then
  -- Another consumer settled it (it was claimed away from us).
  return {'gone'}
end
local now = now_ms()
local probe = ARGV[10] == '1'
local made, _, history = parse_attempts(redis.call('HGET', attempts, id))
if not probe then made = made + 1 end
history = history .. ARGV[4]
redis.call('HSET', attempts, id, attempt_record(made, '', history))
redis.call('HINCRBY', KEYS[5], 'failed', 1)
redis.call('EXPIRE', KEYS[5], ARGV[11], 'NX')
local failures = redis.call('HINCRBY', state, 'failures', 1)
redis.call('HSET', state, 'last_fail', now, 'last_status', ARGV[5])
local threshold, max_attempts = tonumber(ARGV[7]), tonumber(ARGV[6])
local due = now + tonumber(ARGV[3])
local function open(cooldown)
  redis.call('HSET', state, 'breaker', 'open', 'open_until', now + cooldown, 'cooldown', cooldown)
  redis.call('HDEL', state, 'probe_until')
end
local held = false
if threshold > 0 then
  local base, longest = tonumber(ARGV[8]), tonumber(ARGV[9])
  local breaker = redis.call('HGET', state, 'breaker')
  if probe then
    local last = tonumber(redis.call('HGET', state, 'cooldown') or base)
    open(math.min(last * 2, longest))
  elseif made >= max_attempts and failures >= made then
    held = true
    if breaker ~= 'open' then open(base) end
  elseif failures >= threshold and not breaker then
    open(base)
  end
end
if made >= max_attempts and not probe and not held then
  return {'dead', made}
end
local open_until = 0
if redis.call('HGET', state, 'breaker') == 'open' then
  open_until = tonumber(redis.call('HGET', state, 'open_until') or 0)
end
if due < open_until then due = open_until end
redis.call('ZADD', retry, due, id)
return {'retry', due, open_until}
