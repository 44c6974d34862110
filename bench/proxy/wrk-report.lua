-- wrk script for bench/proxy.sh: prints one machine-readable line with the
-- run's totals and latency percentiles (microseconds) when the run ends.
-- With WRK_DELAY_MS set, each connection waits between requests a random
-- time from 0 to twice that (that on average): a paced load below
-- saturation whose connections do not fire in step (a fixed pause keeps all
-- of them in phase, and each round arrives as one burst).
local pace = tonumber(os.getenv("WRK_DELAY_MS") or "")
if pace then
  math.randomseed(os.time())
  delay = function()
    return math.random(0, 2 * pace)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
