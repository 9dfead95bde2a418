#!/usr/bin/env bash
# Installs what builds, tests and the demo need when it is missing (Debian 12).
# Swift itself must already be on PATH. `--tests` adds what only the tests use.
set -euo pipefail

need_apt=()
if [ "${1:-}" = "--tests" ]; then
  # Headless Chromium draws the HTML report in its end-to-end test.
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  # A real PostgreSQL server for the shared-state tests (started by the tests themselves).
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need_apt+=(postgresql)
    # The tests start their own servers: no cluster, no server started by the package.
    if [ "$(id -u)" -eq 0 ]; then
      mkdir -p /etc/postgresql-common
      [ -f /etc/postgresql-common/createcluster.conf ] \
        || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
  fi
fi
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
[ -f /usr/include/sqlite3.h ] || need_apt+=(libsqlite3-dev)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
# faketime moves a test broker's clock (the clock-skew fault test).
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "sixty: missing Debian packages: ${need_apt[*]}; run: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  echo "Installing ${need_apt[*]} …"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "sixty: Swift 6 is not on PATH; install a Swift 6.2 or newer toolchain first." >&2
  exit 1
fi

# moto (an independent AWS implementation) and the AWS CLI for end-to-end tests.
need_pip=()
command -v moto_server >/dev/null 2>&1 || need_pip+=("moto[server]")
command -v aws >/dev/null 2>&1 || need_pip+=(awscli)
python3 -c 'import boto3' >/dev/null 2>&1 || need_pip+=(boto3)
# croniter is the reference the schedule tests compare fire times with (tests only).
python3 -c 'import croniter' >/dev/null 2>&1 || need_pip+=(croniter)
# kubernetes-validate (it ships the Kubernetes JSON schemas) checks deploy/kubernetes offline (tests only).
if [ "${1:-}" = "--tests" ]; then
  python3 -c 'import kubernetes_validate' >/dev/null 2>&1 || need_pip+=(kubernetes-validate)
fi
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "Installing ${need_pip[*]} from PyPI …"
  python3 -m pip install --quiet "${need_pip[@]}" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "${need_pip[@]}"
fi
