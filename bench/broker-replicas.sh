#!/usr/bin/env bash
# Broker replicas on PostgreSQL: signed SendSSHPublicKey pushes per second (each one verified,
# claimed in the shared replay cache, stored and appended to the one audit hash chain, all in one
# transaction) and agent key-list fetch latency (each fetch audited in the chain too), for one and
# two `sixty broker serve` replicas on one database, beside the in-memory store (audit log file
# and replay cache on local disk) measured in the same run with the same client. PostgreSQL runs
# with its default settings (fsync and synchronous_commit on), started here by initdb + postgres
# as the `postgres` user and stopped by its pid. At the end, `sixty audit verify --store` checks
# the chain that both replicas wrote.
# Targets with two replicas: >= 1,000 pushes/s and agent fetch p99 < 20 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
pushes=${PUSHES:-20000}
fetches=${FETCHES:-20000}
concurrency=${CONCURRENCY:-32}
fetch_concurrency=${FETCH_CONCURRENCY:-4}
bin=${BIN:-.build-release/release}
[ -x "$bin/sixty" ] && [ -x "$bin/sixty-bench" ] || { echo "build first: make release" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] || { echo "PostgreSQL is not installed (scripts/install-deps.sh --tests)" >&2; exit 1; }
work=$(mktemp -d /tmp/sixty-replicas-XXXXXX)
chmod 755 "$work"
pids=()
pg_pid=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_pid" ]; then kill -INT "$pg_pid" 2>/dev/null || true; wait "$pg_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres:postgres "$work"
  as_pg=(setpriv --reuid=postgres --regid=postgres --clear-groups --)
fi
"${as_pg[@]}" "$pgbin/initdb" -D "$work/data" -U sixty --auth=trust -E UTF8 --locale=C >/dev/null
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
touch "$work/postgres.log"
"${as_pg[@]}" "$pgbin/postgres" -D "$work/data" -k "$work" -p "$pgport" -c listen_addresses=127.0.0.1 \
  -c max_connections=200 >"$work/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do grep -q "ready to accept connections" "$work/postgres.log" && break; sleep 0.1; done
psql=("$pgbin/psql" -h "$work" -p "$pgport" -U sixty -qAt)
"${psql[@]}" -d postgres -c "CREATE DATABASE one" -c "CREATE DATABASE two" >/dev/null

key=AKIDSIXTYBENCH000001
secret=bench-secret-0123456789abcdefghij
token=bench-agent-token-0123456789
config() { # FILE STORE-LINE
  {
    echo "listen: 127.0.0.1:0"
    echo "region: us-east-1"
    echo "max_connections_per_source: 256" # every client is on 127.0.0.1
    echo "$2"
    echo "signing_key_file: $work/signing.key"
    echo "principals:"
    echo "  bench: {access_key_id: $key, secret: $secret, hosts: [all], users: ['*'], rate: {per_second: 1000000, burst: 1000000}}"
    echo "hosts:"
    for i in $(seq 1 100); do printf '  i-%016x: {name: host-%d, token: %s}\n' "$i" "$i" "$token"; done
  } >"$1"
  chmod 0600 "$1"
}
start_broker() { # NAME CONFIG -> sets $endpoint (no $(…): the broker's pid must reach pids)
  "$bin/sixty" broker serve --config "$2" --port-file "$work/$1.port" --log-level warning >"$work/$1.out" 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 1 200); do [ -s "$work/$1.port" ] && break; sleep 0.1; done
  [ -s "$work/$1.port" ] || { echo "broker $1 did not start:" >&2; cat "$work/$1.log" >&2; exit 1; }
  endpoint="http://127.0.0.1:$(cat "$work/$1.port")"
}
measure() { # LABEL ENDPOINTS
  local label=$1 endpoints=$2
  "$bin/sixty-bench" push "$endpoints" "$key" "$secret" i-0000000000000001 ops "$pushes" "$concurrency" >"$work/push"
  "$bin/sixty-bench" fetch "$endpoints" i-0000000000000001 ops "$token" "$fetches" "$fetch_concurrency" >"$work/fetch"
  # Fetches while pushes go on: what an agent sees from a busy broker.
  "$bin/sixty-bench" push "$endpoints" "$key" "$secret" i-0000000000000002 ops "$pushes" "$concurrency" >"$work/push2" &
  local loader=$!
  "$bin/sixty-bench" fetch "$endpoints" i-0000000000000002 ops "$token" "$((fetches / 4))" "$fetch_concurrency" >"$work/busy"
  wait "$loader"
  local rate p99 busy
  rate=$(sed -E 's/.*= ([0-9]+)\/s.*/\1/' "$work/push")
  p99=$(sed -E 's/.*p99 ([0-9.]+).*/\1/' "$work/fetch")
  busy=$(sed -E 's/.*p99 ([0-9.]+).*/\1/' "$work/busy")
  printf '%-32s %8s pushes/s   fetch p99 %6s ms   fetch p99 under push load %6s ms\n' "$label" "$rate" "$p99" "$busy"
  echo "$rate $p99 $busy" >"$work/$3.result"
}

echo "Broker replicas on PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') ($(nproc) cores): $pushes pushes over $concurrency connections, $fetches agent fetches over $fetch_concurrency"
config "$work/memory.yml" "audit_log: $work/audit.jsonl"
start_broker memory "$work/memory.yml"
measure "in-memory store, 1 broker" "$endpoint" memory
config "$work/one.yml" "store: postgresql://sixty@127.0.0.1:$pgport/one?sslmode=disable"
start_broker one "$work/one.yml"
measure "PostgreSQL store, 1 replica" "$endpoint" one
config "$work/two.yml" "store: postgresql://sixty@127.0.0.1:$pgport/two?sslmode=disable"
start_broker two-a "$work/two.yml"
two_a=$endpoint
start_broker two-b "$work/two.yml"
two_b=$endpoint
measure "PostgreSQL store, 2 replicas" "$two_a,$two_b" two

records=$("${psql[@]}" -d two -c "SELECT sequence FROM broker_audit_head")
echo "audit chain of the two replicas: $records records"
"$bin/sixty" audit verify --store "postgresql://sixty@127.0.0.1:$pgport/two?sslmode=disable" | tail -1
read -r rate p99 busy <"$work/two.result"
read -r mrate _ _ <"$work/memory.result"
echo "ratio: two PostgreSQL replicas = $(awk "BEGIN{printf \"%.2f\", $rate/$mrate}") x the in-memory store's pushes/s"
status=0
awk "BEGIN{exit !($rate >= 1000)}" && echo "pushes/s target with two replicas (>= 1000): ok" || { echo "pushes/s target with two replicas (>= 1000): MISSED"; status=1; }
awk "BEGIN{exit !($p99 < 20)}" && echo "fetch p99 target with two replicas (< 20 ms): ok" || { echo "fetch p99 target with two replicas (< 20 ms): MISSED"; status=1; }
exit $status
