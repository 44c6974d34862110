#!/usr/bin/env bash
# The README's first command: installs what Hangar needs, builds it, starts
# `hangar serve` on its defaults, imports a sample image built locally (no
# internet needed) and runs a two-container machine in it, then tells you how to
# reach it. The server keeps running in the foreground; Ctrl-C stops it (machines
# keep running and are re-attached at the next start).
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'echo "demo: failed at line $LINENO" >&2' ERR

scripts/install-deps.sh
echo "== building (release)" >&2
cargo build --release --locked -q -p hangar -p pilot
cargo build --release --locked -q -p hangar-test-support --example sample-image

bin=target/release
data=${HANGAR_DATA_DIR:-/var/lib/hangar}
listen=${HANGAR_LISTEN:-127.0.0.1:4280}
export HANGAR_API_TOKEN=${HANGAR_API_TOKEN:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}
api="http://$listen/v1"
auth=(-H "Authorization: Bearer $HANGAR_API_TOKEN")

echo "== sample image" >&2
sample=$(mktemp -d)
"$bin/examples/sample-image" "$sample/oci" >/dev/null
"$bin/hangar" image import "$sample/oci" --name hangar.local/sample:latest --data-dir "$data"
rm -rf "$sample"

echo "== hangar serve (data in $data, API on $listen)" >&2
"$bin/hangar" serve --data-dir "$data" --listen "$listen" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' INT TERM
for _ in $(seq 100); do
  curl -sf "${auth[@]}" "$api/apps" >/dev/null 2>&1 && break
  sleep 0.1
done

port=${HANGAR_DEMO_PORT:-8080}
export HANGAR_API_URL="http://$listen"
"$bin/hangar" apps create demo >/dev/null 2>&1 || true
machine=$(curl -sf "${auth[@]}" -X POST "$api/apps/demo/machines" -d '{
  "name": "demo-'"$(date +%s)"'",
  "config": {
    "guest": {"cpus": 1, "memory_mb": 256},
    "services": [{"protocol": "tcp", "internal_port": 8080,
                  "ports": [{"port": '"$port"', "handlers": ["http"]}],
                  "autostop": "stop", "autostart": true, "min_machines_running": 0}],
    "containers": [
      {"name": "web", "image": "hangar.local/sample:latest",
       "cmd": ["/usr/local/bin/testapp", "serve-http", "8080", "--body", "hello from a Hangar machine"],
       "health_checks": [{"type": "http", "port": 8080, "path": "/health",
                          "interval": "1s", "timeout": "1s", "success_threshold": 2}]},
      {"name": "echo", "image": "hangar.local/sample:latest",
       "cmd": ["/usr/local/bin/testapp", "serve-tcp", "9000"],
       "depends_on": [{"container": "web", "condition": "healthy"}]}
    ]
  }
}')
id=$(sed -E 's/.*"id":"([0-9a-f]+)".*/\1/' <<<"$machine" | head -c 14)
ipv6=$(sed -E 's/.*"private_ip":"([^"]+)".*/\1/' <<<"$machine")
ipv4=$(sed -E 's/.*"private_ipv4":"([^"]+)".*/\1/' <<<"$machine")
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
  sleep 0.1
done

cat <<INFO

Machine $id is started (containers: web, then echo once web is healthy).
Through the proxy (it stops the machine after a minute or two without traffic,
and the next request starts it again):
  curl http://127.0.0.1:$port/
Directly:
  curl http://$ipv4:8080/
  curl -g 'http://[$ipv6]:8080/health'
With the CLI:
  export HANGAR_API_URL=$HANGAR_API_URL HANGAR_API_TOKEN=$HANGAR_API_TOKEN
  $bin/hangar machine list -a demo
  $bin/hangar machine logs -a demo $id
  $bin/hangar machine exec -a demo $id --container web -- ps
Ctrl-C stops the server (machines keep running).

INFO
wait $server
