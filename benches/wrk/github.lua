-- wrk script for benches/load.rs: signed 1 KiB GitHub-style webhooks.
-- GitHub's signature covers the body only, so one signed body serves every
-- request, while X-GitHub-Delivery (the event id hookd de-duplicates on) is
-- unique per request: every request is a new event, and wrk spends no CPU
-- on HMAC. load.rs passes: path, signature header value, id prefix, body.
-- With WRK_PAUSE_MS set, each connection pauses that long after every
-- answer, which paces the load below the maximum.
local threads_started = 0

function setup(thread)
  threads_started = threads_started + 1
  thread:set("thread_index", threads_started)
end

function init(args)
  path, signature, prefix, body = args[1], args[2], args[3], args[4]
  sent = 0
end

function request()
  sent = sent + 1
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-Hub-Signature-256"] = signature,
    ["X-GitHub-Delivery"] = prefix .. "-" .. thread_index .. "-" .. sent,
  }, body)
end

local pause = tonumber(os.getenv("WRK_PAUSE_MS") or "")
if pause then
  function delay()
    return pause
  end
end

-- With WRK_RATE set (requests/s for the whole run; use -t1), requests
-- follow a fixed schedule, one slot every 1/WRK_RATE s: a connection whose
-- answer came back early waits for the next free slot, and if hookd falls
-- behind the schedule the connections send at once to catch up (open loop,
-- bounded by the connection count).
local rate = tonumber(os.getenv("WRK_RATE") or "")
if rate then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } hookd_timespec;
    int clock_gettime(int clock, hookd_timespec *tp);
  ]]
  local ts = ffi.new("hookd_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 / rate
  local next_at = nil
  function delay()
    local now = now_ms()
    next_at = (next_at or now) + interval
    local wait = next_at - now
    if wait < 0 then
      return 0
    end
    return wait
  end
end
