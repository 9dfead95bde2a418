#!/usr/bin/env bash
# A `make test` step: `make install DESTDIR=… PREFIX=…` as scripts/install.sh does it, from the
# debug build (no second, release build): the man pages come from swift-argument-parser's
# generate-manual plugin run on the debug build, then everything is installed into a scratch
# DESTDIR and checked: programs, completions for bash, zsh and fish, man pages, and systemd units
# whose commands and flags exist (`systemd-analyze verify` too where systemd is installed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
swift=${SWIFT:-swift}
bindir=$root/.build/debug
prefix=/opt/sixty-install-test
failures=0
fail() { echo "test-install: FAIL: $*" >&2; failures=$((failures + 1)); }

"$swift" package plugin generate-manual --configuration debug --multi-page >/dev/null
mansrc=$root/.build/plugins/GenerateManual/outputs/sixty
staging=$(mktemp -d "${TMPDIR:-/tmp}/sixty-install-test-XXXXXX")
trap 'rm -rf -- "$staging"' EXIT
dest=$staging/root
target=$dest$prefix

# Refusals name what is wrong.
if out=$(DESTDIR=$dest PREFIX=$prefix BINDIR=$staging/nowhere MANSRC=$mansrc scripts/install.sh 2>&1); then
  fail "install.sh accepted a BINDIR without programs"
else
  case $out in *"$staging/nowhere/sixty is missing; build first (make release)"*) ;; *) fail "missing programs: $out" ;; esac
fi
if DESTDIR=$dest PREFIX=relative BINDIR=$bindir MANSRC=$mansrc scripts/install.sh 2>/dev/null; then
  fail "install.sh accepted a relative PREFIX"
fi

DESTDIR=$dest PREFIX=$prefix BINDIR=$bindir MANSRC=$mansrc scripts/install.sh

for program in sixty sixty-agent sixty-agent-tls; do
  [ "$(stat -c %a "$target/bin/$program")" = 755 ] || fail "$program is not installed 0755"
  cmp -s "$bindir/$program" "$target/bin/$program" || fail "$program differs from the build"
done
"$target/bin/sixty" --version >/dev/null || fail "the installed sixty does not run"

bash_completion=$target/share/bash-completion/completions/sixty
bash -c '. "$1" && complete -p sixty' - "$bash_completion" >/dev/null || fail "bash completion does not register sixty"
grep -q 'broker' "$bash_completion" || fail "bash completion does not know 'broker'"
grep -q '^#compdef sixty' "$target/share/zsh/site-functions/_sixty" || fail "zsh completion is not a #compdef file"
if command -v zsh >/dev/null 2>&1; then zsh -n "$target/share/zsh/site-functions/_sixty" || fail "zsh completion"; fi
grep -q "^complete -c 'sixty' " "$target/share/fish/vendor_completions.d/sixty.fish" || fail "fish completion does not complete sixty"
if command -v fish >/dev/null 2>&1; then fish -n "$target/share/fish/vendor_completions.d/sixty.fish" || fail "fish completion"; fi

man1=$target/share/man/man1
for page in sixty.1 sixty.broker.serve.1 sixty.jobs.daemon.1 sixty.run.1 sixty.exec.1; do
  [ -f "$man1/$page" ] || { fail "no man page $page"; continue; }
  rendered=$(MANWIDTH=100 man -l "$man1/$page" 2>/dev/null) || fail "man cannot render $page"
  [ -n "$rendered" ] || fail "$page renders empty"
done
MANWIDTH=100 man -l "$man1/sixty.broker.serve.1" 2>/dev/null | grep -q -- '--port-file' \
  || fail "sixty.broker.serve.1 does not describe --port-file"

units=$target/lib/systemd/system
for unit in sixty-broker.service sixty-jobs.service; do
  [ -f "$units/$unit" ] || { fail "no unit $unit"; continue; }
  exec_start=$(sed -n 's/^ExecStart=//p' "$units/$unit")
  case $exec_start in "$prefix/bin/sixty "*) ;; *) fail "$unit: ExecStart does not run $prefix/bin/sixty: $exec_start" ;; esac
  for setting in ProtectSystem=strict Restart=on-failure NoNewPrivileges=yes StateDirectory=; do
    grep -q "^$setting" "$units/$unit" || fail "$unit has no $setting"
  done
  # The command line the unit runs, its files moved to where nothing is: sixty takes every
  # subcommand and flag and stops at reading the first file, instead of printing its usage.
  read -r -a words <<<"$exec_start"
  words[0]=$target/bin/sixty
  for i in "${!words[@]}"; do
    case ${words[$i]} in /* | %d/*) [ "$i" = 0 ] || words[$i]=$staging/nothing/${words[$i]##*/} ;; esac
  done
  out=$(timeout 20 "${words[@]}" 2>&1 </dev/null) && fail "$unit: '${words[*]}' ran without its files"
  case $out in
    *"cannot read '$staging/nothing/"*) ;;
    *) fail "$unit: sixty does not take the unit's command line '$exec_start': $out" ;;
  esac
done
grep -q '^DynamicUser=yes' "$units/sixty-broker.service" || fail "the broker does not run as a dynamic user"
grep -q '^User=sixty' "$units/sixty-jobs.service" || fail "the jobs daemon does not run as sixty"
grep -q '^u sixty ' "$target/lib/sysusers.d/sixty.conf" || fail "sysusers.d does not make the user sixty"

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify wants the programs where the units name them: copies of the units naming the staged
  # ones; MANPATH lets it find the pages their Documentation= names.
  mkdir -p "$staging/verify"
  for unit in "$units"/*.service; do
    sed "s|$prefix/bin/|$target/bin/|g" "$unit" >"$staging/verify/$(basename "$unit")"
  done
  out=$(MANPATH=$target/share/man systemd-analyze verify "$staging/verify/"*.service 2>&1) \
    || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
fi

if [ "$failures" -gt 0 ]; then
  echo "test-install: $failures check(s) failed" >&2
  exit 1
fi
echo "test-install: make install DESTDIR=… PREFIX=$prefix installs programs, completions, man pages and units: ok"
