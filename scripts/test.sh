#!/usr/bin/env bash
# The test command of the README: installs what is needed, then runs formatting,
# lints, the whole test suite (as root: real namespaces, cgroups, mounts) and a
# bounded fuzz run of the config parser.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== fmt" >&2
cargo fmt --all -- --check
echo "== clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests" >&2
# Tests that run machines use the pilot binary this same build makes for pilot's
# own tests, instead of building it again with other features.
export HANGAR_PILOT="${CARGO_TARGET_DIR:-$PWD/target}/debug/pilot"
cargo test --workspace --locked
echo "== fuzz (${HANGAR_FUZZ_SECS:=60}s)" >&2
HANGAR_FUZZ_SECS="$HANGAR_FUZZ_SECS" cargo test -p hangar-types --release --locked --test fuzz -- --ignored --nocapture
