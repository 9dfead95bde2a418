#!/usr/bin/env bash
# Broker load on loopback: signed SendSSHPublicKey pushes per second and agent key-list fetch
# latency against the release build of `sixty broker`, and, as a yardstick measured in the same
# run with the same client, the same pushes against moto_server (AWS's API as a Python server).
# Targets: >= 2,000 pushes/s and agent fetch p99 < 20 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
pushes=${PUSHES:-20000}
fetches=${FETCHES:-20000}
concurrency=${CONCURRENCY:-32}
bin=.build-release/release
[ -x "$bin/sixty" ] && [ -x "$bin/sixty-bench" ] || { echo "build first: make release" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
key=AKIDSIXTYBENCH000001
secret=bench-secret-0123456789abcdefghij
token=bench-agent-token-0123456789
{
  echo "listen: 127.0.0.1:0"
  echo "region: us-east-1"   # what sixty-bench signs for
  echo "max_connections_per_source: 256" # every client is on 127.0.0.1
  # As a real broker runs: every push and fetch in the audit log, every accepted signature in the
  # replay cache beside it, both flushed to disk before the answer.
  echo "audit_log: $work/audit.jsonl"
  echo "signing_key_file: $work/signing.key"
  echo "principals:"
  echo "  bench: {access_key_id: $key, secret: $secret, hosts: [all], users: ['*'], rate: {per_second: 1000000, burst: 1000000}}"
  echo "hosts:"
  for i in $(seq 1 100); do printf '  i-%016x: {name: host-%d, token: %s}\n' "$i" "$i" "$token"; done
} >"$work/broker.yml"
chmod 0600 "$work/broker.yml" # secrets inline: the broker refuses a file others can read
"$bin/sixty" broker serve --config "$work/broker.yml" --port-file "$work/port" --log-level warning 2>"$work/broker.log" &
pids+=($!)
broker_pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
endpoint=http://127.0.0.1:$port
echo "sixty broker on $endpoint ($(nproc) cores): pushes over $concurrency connections, agent fetches over ${FETCH_CONCURRENCY:-4}"
"$bin/sixty-bench" push "$endpoint" "$key" "$secret" i-0000000000000001 ops "$pushes" "$concurrency" | tee "$work/push"
rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$broker_pid/status")
"$bin/sixty-bench" fetch "$endpoint" i-0000000000000001 ops "$token" "$fetches" "${FETCH_CONCURRENCY:-4}" | tee "$work/fetch"
echo "broker peak RSS: ${rss} MB"

if command -v moto_server >/dev/null; then
  mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  moto_server -H 127.0.0.1 -p "$mport" >"$work/moto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$mport),0.2)" 2>/dev/null && break; sleep 0.2; done
  mcount=$((pushes / 10))
  "$bin/sixty-bench" push "http://127.0.0.1:$mport" "$key" "$secret" i-0000000000000001 ops "$mcount" "$concurrency" | sed 's/^push/moto push/' | tee "$work/moto"
  ours=$(sed -E 's/.*= ([0-9]+)\/s.*/\1/' "$work/push")
  theirs=$(sed -E 's/.*= ([0-9]+)\/s.*/\1/' "$work/moto")
  echo "ratio: sixty broker pushes/s = $(awk "BEGIN{printf \"%.1f\", $ours/$theirs}") x moto_server"
fi
ours=$(sed -E 's/.*= ([0-9]+)\/s.*/\1/' "$work/push")
p99=$(sed -E 's/.*p99 ([0-9.]+).*/\1/' "$work/fetch")
awk "BEGIN{print ($ours >= 2000) ? \"pushes/s target (>= 2000): ok\" : \"pushes/s target (>= 2000): MISSED\"}"
awk "BEGIN{print ($p99 < 20) ? \"fetch p99 target (< 20 ms): ok\" : \"fetch p99 target (< 20 ms): MISSED\"}"
