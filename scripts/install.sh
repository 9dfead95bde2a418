#!/usr/bin/env bash
# make install: the programs, shell completions, man pages and systemd units.
#
#   PREFIX   where they go (default /usr/local): PREFIX/bin, PREFIX/share/man/man1,
#            PREFIX/share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d},
#            PREFIX/lib/systemd/system, PREFIX/lib/sysusers.d
#   DESTDIR  a staging root put before every path (packaging); the units still name PREFIX
#   BINDIR   the built programs (default .build-release/release, what `make release` builds)
#   MANSRC   the man pages made by swift-argument-parser's generate-manual plugin from the
#            commands (default .build-release/plugins/GenerateManual/outputs/sixty)
#
# Nothing is built here: `make install` builds first (`make release`), and the tests install
# the debug build with BINDIR and MANSRC.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${PREFIX:-/usr/local}
destdir=${DESTDIR:-}
bindir=${BINDIR:-$root/.build-release/release}
mansrc=${MANSRC:-$root/.build-release/plugins/GenerateManual/outputs/sixty}
programs=(sixty sixty-agent sixty-agent-tls)

case $prefix in
  /*[!A-Za-z0-9/._+-]* | *..*) echo "install: PREFIX may hold only letters, digits and / . _ + -, not '$prefix'" >&2; exit 2 ;;
  /*) ;;
  *) echo "install: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac
for program in "${programs[@]}"; do
  [ -x "$bindir/$program" ] || { echo "install: $bindir/$program is missing; build first (make release)" >&2; exit 1; }
done
compgen -G "$mansrc/*.1" >/dev/null || {
  echo "install: no man pages in $mansrc; make them first (make release runs the generate-manual plugin)" >&2
  exit 1
}

target=$destdir$prefix
install -d -m 0755 "$target/bin" "$target/share/man/man1" "$target/share/bash-completion/completions" \
  "$target/share/zsh/site-functions" "$target/share/fish/vendor_completions.d" \
  "$target/lib/systemd/system" "$target/lib/sysusers.d"

# sixty-agent runs sixty-agent-tls from its own directory for an https:// broker.
for program in "${programs[@]}"; do
  install -m 0755 "$bindir/$program" "$target/bin/$program"
done

"$bindir/sixty" --generate-completion-script bash >"$target/share/bash-completion/completions/sixty"
"$bindir/sixty" --generate-completion-script zsh >"$target/share/zsh/site-functions/_sixty"
"$bindir/sixty" --generate-completion-script fish >"$target/share/fish/vendor_completions.d/sixty.fish"
chmod 0644 "$target/share/bash-completion/completions/sixty" "$target/share/zsh/site-functions/_sixty" \
  "$target/share/fish/vendor_completions.d/sixty.fish"

for page in "$mansrc"/*.1; do
  install -m 0644 "$page" "$target/share/man/man1/$(basename "$page")"
done

# The units run the programs from PREFIX/bin (where they are once DESTDIR is unpacked).
for unit in "$root"/packaging/systemd/*.service; do
  sed "s|@BINDIR@|$prefix/bin|g" "$unit" >"$target/lib/systemd/system/$(basename "$unit")"
  chmod 0644 "$target/lib/systemd/system/$(basename "$unit")"
done
install -m 0644 "$root/packaging/sysusers.d/sixty.conf" "$target/lib/sysusers.d/sixty.conf"

echo "installed sixty, sixty-agent, sixty-agent-tls, completions, $(find "$mansrc" -name '*.1' | wc -l) man pages and 2 systemd units under $target"
