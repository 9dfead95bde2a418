#!/usr/bin/env bash
# Planning at scale: `sixty plan` on HOSTS hosts x TASKS tasks (default 10,000 x 50), in every
# output format, with wall time and peak memory. Target: under 2 s and 500 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${HOSTS:-10000}
tasks=${TASKS:-50}
bin=${SIXTY_BIN:-.build-release/release/sixty}
[ -x "$bin" ] || { echo "build the release binary first: make release" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/gen-plan-fleet.py "$work" "$hosts" "$tasks"
printf '%s\n' "sixty plan: $hosts hosts x $tasks tasks ($(du -h "$work/inventory.yml" | cut -f1) inventory), $(nproc) cores"
printf '%-8s %10s %12s %14s %8s\n' format "wall (s)" "peak RSS" "output" "target"
for format in json text dot; do
  best=""
  for run in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$work/time" "$bin" plan "$work/playbook.yml" -i "$work/inventory.yml" --format "$format" >"$work/out" 2>"$work/err" || true
    read -r wall rss <"$work/time"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then best=$wall; best_rss=$rss; fi
  done
  verdict=$(awk "BEGIN{print ($best < 2 && $best_rss < 500*1024) ? \"ok\" : \"MISSED\"}")
  printf '%-8s %10s %9d MB %11s %8s\n' "$format" "$best" $((best_rss / 1024)) "$(du -h "$work/out" | cut -f1)" "$verdict"
done
