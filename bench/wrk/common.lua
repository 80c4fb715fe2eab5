-- Shared by the bench scripts (loaded with dofile): per-thread counters, a measuring window
-- that ends cleanly, and one JSON summary line for bench/run.py.
--
-- Arguments after `--`: window seconds, thread count, then the script's own. The bearer
-- token comes from the BENCH_TOKEN environment variable.
--
-- The window: until it ends every connection sends requests back to back; after it,
-- delay() parks each connection once its response is in, and wrk's -d (window + grace)
-- lets the last in-flight responses arrive. So every request the server handled is
-- counted here (a payment's 201 is never lost to wrk's stop), and the latency histogram
-- holds only real requests.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")

function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- The seeded invoices have ids built from a number (see bench/seed.py).
function invoice_id(n)
  return string.format("00000000-0000-4000-8000-%012d", n)
end

function auth_headers(extra)
  local h = { ["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "") }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local deadline = 0

function init(args)
  window = tonumber(args[1])
  nthreads = tonumber(args[2])
  deadline = now() + window
  math.randomseed(tid * 7919 + os.time())
  -- fresh: webhook 200s that applied a new event; dup: replays of a known one.
  counts = { in_window = 0, late = 0, fresh = 0, dup = 0, wrapped = 0 }
  -- A separate flat table: wrk's thread:get() cannot copy nested tables (it crashes).
  codes = {}
  prepare({ select(3, unpack(args)) })
end

function delay()
  if now() >= deadline then
    return 3600000
  end
  return 0
end

function response(status, headers, body)
  if now() < deadline then
    counts.in_window = counts.in_window + 1
  else
    counts.late = counts.late + 1
  end
  local key = tostring(status)
  codes[key] = (codes[key] or 0) + 1
  if status == 200 and body then
    if string.find(body, '"duplicate":false', 1, true) then
      counts.fresh = counts.fresh + 1
    elseif string.find(body, '"duplicate":true', 1, true) then
      counts.dup = counts.dup + 1
    end
  end
end

function done(summary, latency, requests)
  local agg = { in_window = 0, late = 0, fresh = 0, dup = 0, wrapped = 0 }
  local status = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, _ in pairs(agg) do
      agg[k] = agg[k] + (c[k] or 0)
    end
    for code, n in pairs(t:get("codes")) do
      status[code] = (status[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(status) do
    parts[#parts + 1] = string.format('"%s":%d', code, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"in_window":%d,"late":%d,"fresh":%d,' ..
    '"dup":%d,"wrapped":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":{%s}}\n',
    summary.requests, summary.duration, agg.in_window, agg.late, agg.fresh, agg.dup,
    agg.wrapped, latency:percentile(50), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end
