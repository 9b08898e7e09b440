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
