#!/bin/sh
# pilot's container runtime vs `runc run`: per-container create + start + wait +
# cleanup of /bin/true. Run as root from the repository root. Writes
# bench/results/pilot-runtime.md. Optional argument: iterations (default 50).
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p pilot --bin pilot --example runtime-bench
cargo run --release -p pilot --example runtime-bench -- "${1:-50}"
