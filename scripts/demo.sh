#!/usr/bin/env bash
# make demo: a local broker and five real sshd hosts, playbooks/demo.yml run against them with
# just-in-time 60-second keys, the recap, a command with 60-second certificates instead, and
# everything stopped afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/sixty-demo-XXXXXX")
trap '"$root/scripts/fleet" down "$dir"; rm -rf "$dir"' EXIT
"$root/scripts/fleet" up --certificates "$dir" 5 >/dev/null
# shellcheck disable=SC1091
. "$dir/env"
report="$root/demo-report.json"
html="$root/demo-report.html"
export SIXTY_HISTORY="$dir/history.sqlite"   # the demo's own run history
echo
echo "\$ sixty plan playbooks/demo.yml -i inventory.yml"
"$root/.build/debug/sixty" plan "$root/playbooks/demo.yml" -i "$dir/inventory.yml" | head -20
echo
echo "\$ sixty run playbooks/demo.yml -i inventory.yml --report demo-report.json --html demo-report.html"
status=0
"$root/.build/debug/sixty" run "$root/playbooks/demo.yml" -i "$dir/inventory.yml" --report "$report" \
  --html "$html" || status=$?
echo
echo "sixty run exited with $status (1: a host failed, as the demo intends). Reports: $report, $html"
echo "(open $html in a browser: the summary, a timeline row per host, the failure and its output)"
echo
echo "\$ sixty exec all -i inventory.yml --policy certificates.yml -- id -un   # push: {mode: certificate}"
echo "push: {mode: certificate}" >"$dir/certificates.yml"
"$root/.build/debug/sixty" exec all -i "$dir/inventory.yml" --policy "$dir/certificates.yml" --no-progress \
  -- id -un | tail -8 || true
echo "(each host checked a 60-second certificate signed by the broker, with no call to it per login)"
echo
echo "Audit log of the broker:"
"$root/.build/debug/sixty" audit show "$dir/audit.jsonl" | tail -5
echo
echo "\$ sixty runs list"
"$root/.build/debug/sixty" runs list
echo
echo "\$ sixty runs rerun 1 --failed --dry-run      # only the hosts that failed"
"$root/.build/debug/sixty" runs rerun 1 --failed --dry-run | head -8 || true
