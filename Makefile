# Sixty: the two set-up commands are `make demo` and `make test`.
SWIFT ?= swift
# `make install` puts everything under $(DESTDIR)$(PREFIX) (see scripts/install.sh).
PREFIX ?= /usr/local
DESTDIR ?=
.DEFAULT_GOAL := build
.PHONY: deps build release install test fuzz demo bench bench-locks bench-plan bench-broker bench-broker-replicas bench-fleet bench-slow-clients format clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

# Every product (sixty, sixty-agent, sixty-agent-tls, sixty-bench) in .build-release/release, and
# the man pages of sixty's commands (swift-argument-parser's generate-manual plugin, on that build).
release: deps
	$(SWIFT) build -c release --scratch-path .build-release
	$(SWIFT) package --scratch-path .build-release plugin generate-manual --multi-page

# The programs, shell completions, man pages and systemd units; DESTDIR for staging.
install: release
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" scripts/install.sh

# The 500-host run takes both cores for minutes, so it runs on its own after the rest (the
# timing checks of other end-to-end tests would otherwise measure its load).
test:
	@scripts/install-deps.sh --tests
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --skip LargeFleetEndToEndTests
	$(SWIFT) test --skip-build --filter LargeFleetEndToEndTests
	SWIFT="$(SWIFT)" scripts/test-install.sh
	scripts/test-kubernetes.sh .build/debug
	fuzz/run.sh

# libFuzzer targets for the playbook, inventory, cron, SigV4 and public-key parsers: saved regressions,
# then FUZZ_SECONDS (default 60) of fuzzing each.
fuzz: deps
	fuzz/run.sh

demo: build
	@scripts/demo.sh

bench: bench-plan bench-broker bench-broker-replicas bench-fleet bench-slow-clients bench-locks

# Sixty against xargs ssh, pssh, parallel-ssh and Ansible on a local fleet of real sshd hosts
# (root; installs pssh from Debian and ansible-core and parallel-ssh into .build-bench/venv).
bench-fleet: release
	bench/fleet.py

bench-broker: release
	bench/broker-load.sh

# Pushes/s and agent fetch latency of one and two broker replicas on a PostgreSQL store (started
# here), beside the in-memory store; targets with two replicas: >= 1,000 pushes/s, fetch p99 < 20 ms.
bench-broker-replicas: release
	bench/broker-replicas.sh

# Honest pushes and agent fetches from 127.0.0.1 while 1,000 slow connections from 127.0.0.2 hold
# on for 60 s; fails below 99 % of honest requests served within 1 s.
bench-slow-clients: release
	bench/slow-clients.py

# 8 runners competing for 200 hosts' locks through a PostgreSQL history and a SQLite one; fails if a
# host was ever held twice.
bench-locks: release
	bench/lock-contention.sh

bench-plan: release
	bench/plan-scale.sh

format:
	$(SWIFT) format -i -r Sources Tests Package.swift bench/Sources

clean:
	rm -rf .build .build-release .build-fuzz fuzz/.build
