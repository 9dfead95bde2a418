#!/usr/bin/env python3
"""Slow clients against `sixty broker`: honest requests served while one address holds slow connections.

Starts a real broker on loopback, then for DURATION seconds (default 60):
  - an attacker process opens ATTACKERS (default 1,000) connections from 127.0.0.2, each sending
    one byte of a never-ending request head every few seconds and reconnecting as soon as the
    broker closes it;
  - honest clients on 127.0.0.1 make SigV4-signed SendSSHPublicKey pushes (botocore's signer) and
    agent key-list fetches (GET /agent/v1/keys, Bearer token) steadily, each on a new connection.
Prints the fraction of honest requests answered with 200 within 1 s and exits 1 below 99 %.

  bench/slow-clients.py [--bin DIR] [--duration S] [--attackers N] [--broker-config 'key: value' ...]

--bin defaults to .build-release/release when it holds `sixty`, else .build/debug.
--broker-config adds lines to broker.yml, e.g. 'max_connections_per_source: 511' and
'header_timeout: 1h' approximate a broker without the per-source limit and the head deadline.

The attacker runs at nice 10 with its own descriptor limit: on a real network its CPU is not the
broker's. Everything started is stopped by its pid, also on failure or Ctrl-C.
"""

import argparse
import http.client
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

KEY_ID = "AKIDSIXTYSLOWBENCH01"
SECRET = "slow-bench-secret-0123456789abcdef"
TOKEN = "slow-bench-agent-token-0123456789"
INSTANCE = "i-0000000000000001"


def attacker(port, count, duration, interval, stats_path):
    """Holds `count` slow connections from 127.0.0.2 for `duration` seconds."""
    os.nice(10)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, count + 256) if hard != resource.RLIM_INFINITY else count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    head = b"GET /agent/v1/keys HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100000
    sel = selectors.DefaultSelector()
    state = {}  # socket -> [next send time, bytes sent, opened at]
    stats = {"connects": 0, "closed_by_broker": 0, "connect_errors": 0, "max_open": 0, "max_held_5s": 0}
    end = time.monotonic() + duration

    def open_one(delay=0.0):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind(("127.0.0.2", 0))
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            stats["connect_errors"] += 1
            s.close()
            return False
        stats["connects"] += 1
        now = time.monotonic()
        state[s] = [now + delay, 0, now]
        sel.register(s, selectors.EVENT_READ)
        return True

    for _ in range(count):
        if not open_one():
            break
    missing = count - len(state)
    while time.monotonic() < end:
        now = time.monotonic()
        timeout = min([v[0] for v in state.values()] + [now + 0.5]) - now
        for key, _ in sel.select(max(0.0, timeout)):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # closed (or reset) by the broker: come straight back
                sel.unregister(s)
                del state[s]
                s.close()
                stats["closed_by_broker"] += 1
                missing += 1
        while missing > 0 and open_one():
            missing -= 1
        now = time.monotonic()
        for s, v in list(state.items()):
            if v[0] <= now:
                try:
                    s.send(head[v[1] % len(head): v[1] % len(head) + 1])
                    v[1] += 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass  # noticed as closed on the next select
                v[0] = now + interval
        stats["max_open"] = max(stats["max_open"], len(state))
        stats["max_held_5s"] = max(stats["max_held_5s"], sum(1 for v in state.values() if now - v[2] >= 5))
    for s in list(state):
        s.close()
    with open(stats_path, "w") as f:
        json.dump(stats, f)


class Honest:
    def __init__(self, port, public_key):
        from botocore.auth import SigV4Auth
        from botocore.credentials import Credentials

        self.port = port
        self.public_key = public_key
        self.signer = SigV4Auth(Credentials(KEY_ID, SECRET), "ec2-instance-connect", "us-east-1")
        self.lock = threading.Lock()
        self.results = []  # (kind, ok, seconds, detail)

    def push(self):
        from botocore.awsrequest import AWSRequest

        body = json.dumps({"InstanceId": INSTANCE, "InstanceOSUser": "ops", "SSHPublicKey": self.public_key})
        request = AWSRequest(
            method="POST", url=f"http://127.0.0.1:{self.port}/", data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AWSEC2InstanceConnectService.SendSSHPublicKey",
                # Signed too, so two pushes in the same second are not one replayed request.
                "X-Sixty-Bench-Nonce": uuid.uuid4().hex,
            })
        self.signer.add_auth(request)
        return "POST", "/", body.encode(), dict(request.headers.items())

    def fetch(self):
        return "GET", f"/agent/v1/keys?instance_id={INSTANCE}&user=ops", None, {"Authorization": f"Bearer {TOKEN}"}

    def one(self, kind):
        method, path, body, headers = self.push() if kind == "push" else self.fetch()
        start = time.monotonic()
        detail = ""
        ok = False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            ok = response.status == 200
            if not ok:
                detail = f"HTTP {response.status}: {data[:120]!r}"
            conn.close()
        except Exception as error:  # a refused, reset or timed-out connection is a failure
            detail = f"{type(error).__name__}: {error}"
        seconds = time.monotonic() - start
        with self.lock:
            self.results.append((kind, ok and seconds <= 1.0, seconds, detail))

    def run(self, duration, threads, pause):
        end = time.monotonic() + duration

        def loop(index):
            kinds = ["push", "fetch"] if index % 2 == 0 else ["fetch", "push"]
            n = 0
            while time.monotonic() < end:
                self.one(kinds[n % 2])
                n += 1
                time.sleep(pause)

        workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(duration + 30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--attackers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=3, help="seconds between an attacker's bytes")
    parser.add_argument("--threads", type=int, default=4, help="honest client threads")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between a thread's requests")
    parser.add_argument("--broker-config", action="append", default=[])
    parser.add_argument("--attacker-only", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker_only:
        port, count, duration, stats = args.attacker_only
        attacker(int(port), int(count), float(duration), args.interval, stats)
        return 0

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bin_dir = args.bin or next(
        (d for d in (f"{root}/.build-release/release", f"{root}/.build/debug") if os.access(f"{d}/sixty", os.X_OK)),
        None)
    if not bin_dir or not os.access(f"{bin_dir}/sixty", os.X_OK):
        print("slow-clients: build first (make release, or swift build)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="sixty-slow-")
    procs = []

    def stop_all(*_):
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        config = f"{work}/broker.yml"
        # Secrets inline: owner-only, or the broker refuses the file.
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(
                "listen: 127.0.0.1:0\nkey_ttl: 60s\n" + "".join(line + "\n" for line in args.broker_config)
                + f"principals:\n  bench: {{access_key_id: {KEY_ID}, secret: {SECRET}, hosts: [all],"
                " users: ['*'], rate: {per_second: 100000, burst: 100000}}\n"
                f"hosts:\n  {INSTANCE}: {{name: h1, token: {TOKEN}}}\n")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{work}/k"], check=True)
        public_key = " ".join(open(f"{work}/k.pub").read().split()[:2])
        log = open(f"{work}/broker.log", "w")
        broker = subprocess.Popen(
            [f"{bin_dir}/sixty", "broker", "serve", "--config", config, "--port-file", f"{work}/port",
             "--log-level", "warning"], stdout=log, stderr=log)
        procs.append(broker)
        port = None
        for _ in range(200):
            try:
                port = int(open(f"{work}/port").read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.05)
        if port is None or broker.poll() is not None:
            print("slow-clients: the broker did not start:\n" + open(f"{work}/broker.log").read(), file=sys.stderr)
            return 2

        honest = Honest(port, public_key)
        honest.run(5, args.threads, args.pause)  # warm-up and baseline, without the attacker
        baseline = honest.results
        honest.results = []

        stats_path = f"{work}/attacker.json"
        attack = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--interval", str(args.interval), "--attacker-only",
             str(port), str(args.attackers), str(args.duration + 5), stats_path])
        procs.append(attack)
        time.sleep(5)  # let the attacker open its connections before measuring
        honest.run(args.duration, args.threads, args.pause)
        try:
            attack.wait(30)
        except subprocess.TimeoutExpired:
            pass
        stats = json.load(open(stats_path)) if os.path.exists(stats_path) else {}
        broker_alive = broker.poll() is None
    finally:
        stop_all()
    log_lines = open(f"{work}/broker.log").read().splitlines() if os.path.exists(f"{work}/broker.log") else []
    shutil.rmtree(work, ignore_errors=True)

    def report(name, results):
        if not results:
            print(f"{name}: no requests")
            return 0.0
        served = sum(1 for r in results if r[1])
        latencies = sorted(r[2] for r in results)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        by_kind = {k: (sum(1 for r in results if r[0] == k and r[1]), sum(1 for r in results if r[0] == k))
                   for k in ("push", "fetch")}
        print(f"{name}: {served}/{len(results)} honest requests served within 1 s ({100 * served / len(results):.2f} %);"
              f" pushes {by_kind['push'][0]}/{by_kind['push'][1]}, fetches {by_kind['fetch'][0]}/{by_kind['fetch'][1]};"
              f" latency p50 {1000 * statistics.median(latencies):.1f} ms, p99 {1000 * p99:.1f} ms,"
              f" max {1000 * latencies[-1]:.1f} ms")
        failures = [r for r in results if not r[1]]
        for r in failures[:5]:
            print(f"  failed {r[0]} after {1000 * r[2]:.0f} ms: {r[3] or 'slower than 1 s'}")
        return served / len(results)

    print(f"broker: {bin_dir}/sixty, extra config: {args.broker_config or 'none'}")
    report("baseline (5 s, no attacker)", baseline)
    print(f"attacker (127.0.0.2, {args.attackers} connections, a byte every {args.interval:g} s): {stats}")
    print(f"broker log: {sum('refusing connections' in l for l in log_lines)} per-source warnings,"
          f" {sum('request head did not arrive' in l for l in log_lines)} head-deadline closes;"
          f" still running at the end: {broker_alive}")
    fraction = report(f"under attack ({args.duration:g} s)", honest.results)
    if fraction < 0.99:
        print("FAIL: fewer than 99 % of honest requests were served within 1 s")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
