#!/bin/sh
# Benchmarks of Hangar's proxy (needs root): requests/s and p99 latency with
# wrk at 1 and 50 connections directly to a machine, through nginx, through
# HAProxy and through Hangar's proxy, in the same run; and the cold start
# (stopped machine -> first byte of a 200 through the proxy); with perf
# installed, a profile of hangar serve under load. Writes
# bench/results/proxy.md.
set -eu
cd "$(dirname "$0")/.."
for tool in wrk nginx haproxy; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh" >&2; exit 1; }
done
if command -v perf >/dev/null; then
  PROXY_BENCH_PERF=1
  export PROXY_BENCH_PERF
fi
exec cargo test -p hangar --release --test proxy_bench -- --ignored --nocapture
