#!/bin/sh
# pilot machine start: launch -> all containers running, for 1, 3 and 10
# containers, with `runc run --detach` of the same rootfs as the reference. Run as
# root from the repository root. Writes bench/results/pilot-start.md. Optional
# argument: iterations per row (default 20).
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p pilot --bin pilot --example pilot-start-bench
cargo run --release -p pilot --example pilot-start-bench -- "${1:-20}"
