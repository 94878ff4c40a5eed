-- wrk script: GET /api/v1/keys/<key id> for random loaded keys (pk_0000001 … pk_N).
-- Environment: BENCH_API_TOKEN, BENCH_NKEYS. Prints one BENCHJSON line at the end.

local token = os.getenv("BENCH_API_TOKEN")
local nkeys = tonumber(os.getenv("BENCH_NKEYS"))
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  math.randomseed(4242 + (tid or 0))
end

function request()
  local path = string.format("/api/v1/keys/pk_%07d", math.random(1, nkeys))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "errors_connect": %d, "errors_read": %d, '
      .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
