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

curl -sf "${auth[@]}" -X POST "$api/apps" -d '{"app_name":"demo"}' >/dev/null 2>&1 || true
machine=$(curl -sf "${auth[@]}" -X POST "$api/apps/demo/machines" -d '{
  "name": "demo-'"$(date +%s)"'",
  "config": {
    "guest": {"cpus": 1, "memory_mb": 256},
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
ipv4=$(curl -sf "${auth[@]}" -X POST "$api/apps/demo/machines/$id/exec" \
  -d '{"container":"web","command":["sh","-c","ip -4 -o addr show eth0 | sed -E \"s/.* inet ([0-9.]+).*/\\1/\""]}' \
  | sed -E 's/.*"stdout":"([0-9.]+).*/\1/')

cat <<INFO

Machine $id is started (containers: web, then echo once web is healthy).
  curl http://$ipv4:8080/
  curl -g 'http://[$ipv6]:8080/health'
  curl -H 'Authorization: Bearer $HANGAR_API_TOKEN' $api/apps/demo/machines/$id
  curl -H 'Authorization: Bearer $HANGAR_API_TOKEN' -X POST $api/apps/demo/machines/$id/stop
The API token is HANGAR_API_TOKEN=$HANGAR_API_TOKEN. Ctrl-C stops the server.

INFO
wait $server
