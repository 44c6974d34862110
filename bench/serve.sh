#!/bin/sh
# Benchmarks of `hangar serve` (needs root): create/start/stop latencies over
# the API, 100 machines at once, the server's RSS, and `runc run` of the same
# image as the floor. Writes bench/results/serve.md.
set -eu
cd "$(dirname "$0")/.."
exec cargo test -p hangar --release --test bench -- --ignored --nocapture
