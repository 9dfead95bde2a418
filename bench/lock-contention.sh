#!/usr/bin/env bash
# Host-lock contention: RUNNERS processes (default 8) compete for the locks of HOSTS hosts
# (default 200) through the run history, each taking a random 5-40 of them per round, holding
# them a few milliseconds and freeing them (bench/Sources/sixty-lock-bench). Once on a PostgreSQL
# history (started here: initdb + postgres as the `postgres` user, stopped by its pid), once on a
# SQLite file, in the same run. Then every hold of every runner is checked: no host may ever have
# been held by two runners at once. Exit 1 if one was.
set -euo pipefail
cd "$(dirname "$0")/.."
runners=${RUNNERS:-8}
hosts=${HOSTS:-200}
rounds=${ROUNDS:-150}
bin=${BIN:-.build-release/release}
[ -x "$bin/sixty-lock-bench" ] || { echo "build first: make release" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "PostgreSQL is not installed (scripts/install-deps.sh --tests)" >&2; exit 1; }
work=$(mktemp -d /tmp/sixty-locks-XXXXXX)
chmod 755 "$work"
pg_pid=
cleanup() {
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
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
touch "$work/postgres.log"
"${as_pg[@]}" "$pgbin/postgres" -D "$work/data" -k "$work" -p "$port" -c listen_addresses=127.0.0.1 \
  -c max_connections=100 >"$work/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 100); do grep -q "ready to accept connections" "$work/postgres.log" && break; sleep 0.1; done
"$pgbin/psql" -h "$work" -p "$port" -U sixty -d postgres -qc "CREATE DATABASE locks" >/dev/null

run() { # NAME HISTORY
  local name=$1 history=$2 start end
  # Created (and migrated) once before the runners start.
  "$bin/sixty-lock-bench" "$history" 0 "$hosts" 0 "$work/$name-setup" >/dev/null
  start=$(date +%s.%N)
  local pids=()
  for r in $(seq 1 "$runners"); do
    "$bin/sixty-lock-bench" "$history" "$r" "$hosts" "$rounds" "$work/$name-$r.holds" >"$work/$name-$r.out" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s.%N)
  python3 - "$name" "$work" "$runners" "$start" "$end" <<'PY'
import sys, glob
name, work, runners, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
holds = {}
count = 0
for path in glob.glob(f"{work}/{name}-*.holds"):
    for line in open(path):
        host, runner, a, b = line.split()
        holds.setdefault(host, []).append((int(a), int(b), runner))
        count += 1
overlaps = 0
for host, spans in holds.items():
    spans.sort()
    for (a1, b1, r1), (a2, b2, r2) in zip(spans, spans[1:]):
        if a2 < b1:
            overlaps += 1
            if overlaps <= 5: print(f"  OVERLAP on {host}: runner {r1} [{a1},{b1}] and runner {r2} [{a2},{b2}]")
rounds = sum(1 for p in glob.glob(f"{work}/{name}-*.out"))
waits = [l.strip() for p in sorted(glob.glob(f"{work}/{name}-*.out")) for l in open(p)]
elapsed = end - start
print(f"{name:10s} {runners} runners, {len(holds)} hosts held, {count} host holds in {elapsed:.1f} s "
      f"({count/elapsed:.0f} host holds/s); hosts held twice at once: {overlaps}")
for w in waits[:2]: print("  " + w)
sys.exit(1 if overlaps else 0)
PY
}
echo "Host-lock contention: $runners runners, $hosts hosts, $rounds rounds each (random 5-40 hosts a round)"
status=0
run postgresql "postgresql://sixty@127.0.0.1:$port/locks?sslmode=disable" || status=1
run sqlite "$work/history.sqlite" || status=1
exit $status
