#!/usr/bin/env bash
# Installs the Debian packages Hangar's build, tests and benchmarks use.
# Idempotent: does nothing when everything is present. Needs root.
set -euo pipefail

packages=(
  build-essential pkg-config   # cc for crates that build C (SQLite)
  iproute2 iptables            # machine networking
  busybox-static               # test images are built from it
  docker-registry              # a real OCI registry on loopback for pull tests
  runc                         # reference runtime in benchmarks
  hyperfine wrk                # benchmark drivers
  nginx haproxy                # reverse proxies the proxy benchmark compares with
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packaged registry starts itself where an init system runs; tests start
# their own on loopback, so make sure no packaged instance holds port 5000.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml" >&2
  exit 1
fi
