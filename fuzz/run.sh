#!/usr/bin/env bash
# Builds the libFuzzer targets with coverage instrumentation (its own build folder) and runs
# each: first every saved regression input (a crash found once stays a test), then fresh
# fuzzing for FUZZ_SECONDS (default 60) from the seed corpus. Exits non-zero on any crash,
# leaving the input under artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
# libFuzzer, not Swift's backtracer, handles a crash: it saves the input under artifacts/.
export SWIFT_BACKTRACE=enable=no
targets=${FUZZ_TARGETS:-"playbook cron sigv4 publickey quote inventory"}
# Release builds: fast fuzzing, and the entry point is libFuzzer's own main. Every Swift module is
# instrumented for coverage (-sanitize=fuzzer), not only the targets.
flags=(-c release --scratch-path ../.build-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library)
for t in $targets; do
  if ! swift build "${flags[@]}" --product "fuzz-$t" >../.build-fuzz.log 2>&1; then
    tail -30 ../.build-fuzz.log >&2
    exit 1
  fi
done
bin=$(swift build "${flags[@]}" --show-bin-path)
mkdir -p artifacts
for t in $targets; do
  exe="$bin/fuzz-$t"
  [ -x "$exe" ] || { echo "fuzz: $exe was not built" >&2; exit 1; }
  regressions=(regressions/$t/*)
  if [ -e "${regressions[0]}" ]; then
    echo "fuzz-$t: replaying ${#regressions[@]} regression input(s)"
    "$exe" -rss_limit_mb=2048 -timeout=10 "${regressions[@]}" >/dev/null 2>artifacts/$t-regressions.log \
      || { echo "fuzz-$t: a regression input fails again:" >&2; tail -20 artifacts/$t-regressions.log >&2; exit 1; }
  fi
  corpus=$(mktemp -d)
  echo "fuzz-$t: fuzzing for ${seconds}s"
  if ! "$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -artifact_prefix="artifacts/$t-" -print_final_stats=1 "$corpus" "seeds/$t" \
    >artifacts/$t.log 2>&1; then
    echo "fuzz-$t: crash found; the input is in artifacts/ (copy it to regressions/$t/ once fixed):" >&2
    tail -30 artifacts/$t.log >&2
    rm -rf "$corpus"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" artifacts/$t.log | sed "s/^/fuzz-$t: /"
  rm -rf "$corpus"
done
