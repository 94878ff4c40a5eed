-- wrk script: signed POST /api/v1/platform-events, each request a new event.
-- The events are signed beforehand by bench/run.py (wrk's Lua has no HMAC) into
-- BENCH_EVENTS_FILE, one per line: webhook-id TAB webhook-timestamp TAB
-- webhook-signature TAB body. Thread i of BENCH_WRK_THREADS sends lines i, i+T, …
-- If a thread runs out it starts again (a redelivery); the count is reported.

local path = os.getenv("BENCH_EVENTS_FILE")
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS"))
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local events = {}
local index = 1
wrapped = 0

function init(args)
  local number = 0
  for line in io.lines(path) do
    if number % nthreads == tid then
      local id, stamp, signature, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      events[#events + 1] = wrk.format("POST", "/api/v1/platform-events", {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = stamp,
        ["webhook-signature"] = signature,
      }, body)
    end
    number = number + 1
  end
end

function request()
  local request = events[index]
  index = index + 1
  if index > #events then
    index = 1
    wrapped = wrapped + 1
  end
  return request
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wrapped") or 0)
  end
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "errors_connect": %d, "errors_read": %d, '
      .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, wraps))
end
