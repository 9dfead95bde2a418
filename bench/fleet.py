#!/usr/bin/env python3
"""Sixty against the tools people use instead, on one local fleet, in one run.

Starts real sshd hosts on loopback addresses (127.30.x.y), all with the same pinned key
exchange and host key algorithm, then runs the same work with each tool and prints wall time,
CPU time (the tool and every process it waited for: the runner's side), the CPU the fleet's
sshds (with all they fork: agent runs, shells, tasks) and the broker spent meanwhile, the whole
machine's busy CPU, peak resident memory of the tool's own process and of its largest child,
and the ratio to Sixty. The fleet and the broker share the runner's cores, so what either costs
slows every tool's run on this machine; the fleet and broker columns show where that cost is.

Every host listens on two ports of the same sshd: one where Sixty logs in, one where a
pre-installed key in a file lets the other tools in. Same sshd, same crypto; only the key
source differs. On Sixty's port the host takes either login Sixty has: a pushed key, which the
Sixty agent (AuthorizedKeysCommand) fetches from a real `sixty broker` at login, or a 60-second
certificate the broker signed (SignSSHPublicKey), which sshd checks on its own (TrustedUserCAKeys
with the broker's CA, AuthorizedPrincipalsFile naming `USER@INSTANCE-ID`, RevokedKeys with the
broker's KRL), with no agent run per login. The broker is a certificate authority with
`prefer: false`, so each Sixty column says which it uses:

  sixty                  the defaults a user gets: the policy sets only concurrency and
                         host_key_checking (pushes paced adaptively, key type per endpoint,
                         pushed keys since the broker does not prefer certificates)
  sixty (certificates)   the same plus `push: {mode: certificate}`
  sixty (tuned)          the old tuned key push, `push: {rate: 1000, burst: ..., key_type: ecdsa}`
                         (not run unless chosen: --tools ...,sixty-tuned)

After each table, a ratio table gives each Sixty column's wall time over xargs-ssh's (the floor),
pssh's and parallel-ssh's, Ansible's over Sixty's, and Sixty's own peak memory.

Every tool logs in as the same user, `sixtybench` (BENCH_USER), which the run creates with a home
made from /etc/skel and removes afterwards: a fleet host's account, whose non-interactive shell
start-up is nothing. (Root's own ~/.bashrc on a developer machine may do far more on every login:
on the machine of bench/RESULTS.md it runs `pyenv init`, about 0.2 s of CPU and a lock that
serialises concurrent logins, which would make every tool's run mostly a measure of that.
BENCH_USER=root measures that case.)

Run as root (sshd must switch users): `make bench-fleet` or `bench/fleet.py` (see --help).
Options, each with the environment variable that sets its default:
  --workloads / BENCH_WORKLOADS (e.g. "a50x10,a200x50,b,c"; aNxP: `true` on N hosts at
    parallelism P; b: a 5-task playbook on 50 hosts; c: `sleep 2` on 200 hosts at parallelism 5),
  --tools / BENCH_TOOLS (e.g. "sixty,sixty-certificates,xargs"; sixty-cert for short),
  --repeat / BENCH_REPEAT (default 3): each workload runs this many rounds, every tool once a
    round, in an order that rotates from round to round; the table shows each tool's median run
    (by wall time), and every run is printed. The machine's speed drifts by 10-30 % from minute
    to minute on these shared 2-core machines, so one run per tool would compare a tool's luck
    as much as the tool.
  --once / BENCH_ONCE (default "ansible,parallel-ssh") names tools measured in the first round
    only. Workload (c) runs once.
  --user / BENCH_USER, --keep / BENCH_KEEP=1 (keep the work directory).
The fleet has as many hosts as the chosen workloads need (200 for the default ones).
"""

import argparse
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SIXTY_BIN_DIR", os.path.join(ROOT, ".build-release", "release"))
SIXTY = os.path.join(BIN, "sixty")
AGENT = os.path.join(BIN, "sixty-agent")
VENV = os.path.join(ROOT, ".build-bench", "venv")
KEX = "curve25519-sha256"
HOSTKEY = "ssh-ed25519"
PER_SSHD = 8  # addresses per sshd: 2 ports each, 16 sockets (sshd's limit)
KEY_ID = "AKIDSIXTYBENCHFLEET1"
SECRET = "bench-fleet-secret-0123456789abcdef"
USER = os.environ.get("BENCH_USER", "sixtybench")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(address, port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((address, port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Fleet:
    def __init__(self, count, work):
        self.work = work
        self.count = count
        self.procs = []
        self.addresses = [f"127.30.{i // 250}.{i % 250 + 1}" for i in range(count)]
        self.agent_port = free_port()
        self.key_port = free_port()
        self.user = USER
        self.created_user = False
        self.agent_home = None
        self.accounts = {name: CpuAccount(name) for name in ("fleet", "broker")}
        try:
            self.make_user()
            # The pre-installed key for the other tools.
            self.key = f"{work}/client_key"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key], check=True)
            shutil.copy(self.key + ".pub", f"{work}/authorized_keys")
            os.chmod(f"{work}/authorized_keys", 0o644)
            # The broker's certificate authority: made here so its public half is there for the
            # sshds (the broker would create a missing one itself).
            self.ca_key = f"{work}/ca.key"
            self.revoked_keys = f"{work}/revoked.krl"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sixty-bench-ca", "-f", self.ca_key],
                           check=True)
            os.chmod(self.ca_key + ".pub", 0o644)
            self.start_broker()
            self.start_sshds()
        except BaseException:
            # A fleet that did not come up still stops what it started (main never gets it).
            self.stop()
            raise

    def make_user(self):
        """Creates the login user with a home from /etc/skel, unless it exists (root, or a user
        that BENCH_USER names); stop() removes only a user made here."""
        try:
            entry = pwd.getpwnam(self.user)
            if self.user == "root" or os.path.isdir(entry.pw_dir):
                return
            # Left by a run that was killed before it could remove it: its home went with that run.
            subprocess.run(["userdel", self.user], check=True)
        except KeyError:
            pass
        home = f"{self.work}/home"
        subprocess.run(["useradd", "--system", "--home-dir", home, "--create-home", "--skel", "/etc/skel",
                        "--shell", "/bin/bash", self.user], check=True)
        subprocess.run(["usermod", "-p", "*", self.user], check=True)  # unlocked, but no password
        self.created_user = True

    def start_broker(self):
        w = self.work
        hosts = "".join(
            f"  i-{i + 1:016x}: {{name: h{i + 1}, token: bench-token-{i + 1:06d}-abcdefgh}}\n"
            for i in range(self.count)
        )
        # Secrets inline: the broker refuses a file others can read.
        with open(os.open(f"{w}/broker.yml", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(
                # Every client and agent connects from 127.0.0.1: one source for the whole fleet.
                f"listen: 127.0.0.1:0\nregion: us-east-1\nkey_ttl: 60s\nmax_connections_per_source: 256\n"
                f"signing_key_file: {w}/signing.key\n"
                f"audit_log: {w}/audit.jsonl\n"
                # A certificate authority too, that leaves the choice to each run's policy.
                f"certificates: {{ca_key_file: {self.ca_key}, revoked_keys_file: {self.revoked_keys}, prefer: false}}\n"
                f"principals:\n"
                f"  bench: {{access_key_id: {KEY_ID}, secret: {SECRET}, hosts: [all], users: ['*'],"
                f" rate: {{per_second: 100000, burst: 100000}}}}\nhosts:\n{hosts}"
            )
        self.broker_key = subprocess.run(
            [SIXTY, "broker", "public-key", "--config", f"{w}/broker.yml"], check=True, capture_output=True, text=True
        ).stdout.strip()
        log = open(f"{w}/broker.log", "w")
        p = subprocess.Popen(
            [SIXTY, "broker", "serve", "--config", f"{w}/broker.yml", "--port-file", f"{w}/broker.port",
             "--log-level", "warning"], stdout=log, stderr=log)
        self.procs.append(p)
        self.accounts["broker"].add(p.pid)
        for _ in range(200):
            if os.path.exists(f"{w}/broker.port") and open(f"{w}/broker.port").read().strip():
                break
            time.sleep(0.05)
        self.broker_port = int(open(f"{w}/broker.port").read().strip())
        self.endpoint = f"http://127.0.0.1:{self.broker_port}"
        # The broker writes an empty KRL at start when there is none; sshd refuses every
        # certificate login while its RevokedKeys file is missing.
        if not os.path.exists(self.revoked_keys):
            subprocess.run(["ssh-keygen", "-q", "-k", "-f", self.revoked_keys], check=True)
        os.chmod(self.revoked_keys, 0o644)

    def install_agent(self):
        """sshd runs the agent as nobody, who may not reach the build (a clone in root's 0700 home),
        and accepts an AuthorizedKeysCommand only under root-owned directories that neither group
        nor others can write: the fleet gets its own copy in a new 0755 directory under /run, with
        the hosts' agent configurations; stop() removes it."""
        for base in ("/run", "/var/lib"):
            st = os.stat(base)
            if st.st_uid != 0 or st.st_mode & 0o022 or not st.st_mode & 0o001 or os.statvfs(base).f_flag & os.ST_NOEXEC:
                continue
            self.agent_home = tempfile.mkdtemp(prefix="sixty-fleet-", dir=base)
            os.chmod(self.agent_home, 0o755)
            shutil.copy(AGENT, f"{self.agent_home}/sixty-agent")
            os.chmod(f"{self.agent_home}/sixty-agent", 0o755)
            return f"{self.agent_home}/sixty-agent"
        raise SystemExit("no place for the fleet's sixty-agent: neither /run nor /var/lib is root-owned, "
                         "0755 at most and on a file system that allows executing programs")

    def start_sshds(self):
        w = self.work
        os.makedirs("/run/sshd", exist_ok=True)
        agent = self.install_agent()
        for start in range(0, self.count, PER_SSHD):
            group = list(range(start, min(start + PER_SSHD, self.count)))
            d = f"{w}/sshd-{start // PER_SSHD}"
            os.makedirs(d, mode=0o755)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/host_key"], check=True)
            lines = [
                f"HostKey {d}/host_key", f"PidFile {d}/sshd.pid", f"KexAlgorithms {KEX}",
                f"HostKeyAlgorithms {HOSTKEY}", "AuthorizedKeysFile none", "PubkeyAuthentication yes",
                # Certificates from the broker's CA, each naming one host and user (the principals
                # file of each host's Match block below), unless the broker's KRL revokes it.
                f"TrustedUserCAKeys {self.ca_key}.pub", f"RevokedKeys {self.revoked_keys}",
                "AuthorizedPrincipalsFile none",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no",
                "MaxStartups 1000:30:2000", "MaxSessions 100", "LogLevel ERROR", "UseDNS no",
                f"Port {self.agent_port}", f"Port {self.key_port}",
            ]
            lines += [f"ListenAddress {self.addresses[i]}" for i in group]
            lines += [f"Match LocalPort {self.key_port}", f"  AuthorizedKeysFile {w}/authorized_keys"]
            for i in group:
                config = f"{self.agent_home}/h{i + 1}.yml"
                # The token is inline: owner-only, owned by the user sshd runs the agent as.
                with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                    f.write(
                        f"broker: {self.endpoint}\ninstance_id: i-{i + 1:016x}\n"
                        f"token: bench-token-{i + 1:06d}-abcdefgh\nbroker_public_key: {self.broker_key}\n"
                        "timeout: 5s\nsyslog: false\n"
                    )
                os.chown(config, pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid)
                # sshd reads it as the login user: world-readable, in 0755 directories.
                principals = f"{w}/host-{i + 1}/principals"
                os.makedirs(principals, mode=0o755)
                with open(f"{principals}/{self.user}", "w") as f:
                    f.write(f"{self.user}@i-{i + 1:016x}\n")
                os.chmod(f"{principals}/{self.user}", 0o644)
                lines += [
                    f"Match LocalAddress {self.addresses[i]} LocalPort {self.agent_port}",
                    f"  AuthorizedKeysCommand {agent} --config {config} %u %f",
                    "  AuthorizedKeysCommandUser nobody",
                    f"  AuthorizedPrincipalsFile {principals}/%u",
                ]
            with open(f"{d}/sshd_config", "w") as f:
                f.write("\n".join(lines) + "\n")
            log = open(f"{d}/sshd.log", "w")
            self.procs.append(subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{d}/sshd_config"],
                                               stdout=log, stderr=log))
            self.accounts["fleet"].add(self.procs[-1].pid)
        for a in self.addresses:
            if not (wait_port(a, self.agent_port) and wait_port(a, self.key_port)):
                raise SystemExit(f"sshd on {a} did not start; see {w}/sshd-*/sshd.log")

    def stop(self):
        self.stop_processes()
        if self.agent_home:
            shutil.rmtree(self.agent_home, ignore_errors=True)
            self.agent_home = None
        if self.created_user:
            # The sshds are gone; sessions they forked end as their clients go (a few seconds).
            for _ in range(20):
                if subprocess.run(["userdel", self.user], stderr=subprocess.DEVNULL).returncode == 0:
                    break
                time.sleep(0.5)
            else:
                print(f"bench: could not remove the user {self.user}; remove it with: userdel {self.user}")
            self.created_user = False
        for account in self.accounts.values():
            account.remove()

    def stop_processes(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class CpuAccount:
    """A cgroup that adds up the CPU time of the processes put in it and of everything they fork:
    cgroup v1's cpuacct hierarchy, or cgroup v2's cpu.stat. The fleet's sshds go in one (so it
    counts the logins, the agent runs sshd forks, the shells and the tasks), the broker in
    another. Where no such cgroup can be made (no cgroup file system, a container without
    delegation), `seconds()` is None and the table prints a dash."""

    def __init__(self, name):
        self.path = None
        self.v1 = os.path.exists("/sys/fs/cgroup/cpuacct/cpuacct.usage")
        base = "/sys/fs/cgroup/cpuacct" if self.v1 else "/sys/fs/cgroup"
        if not self.v1 and not os.path.exists(f"{base}/cgroup.controllers"):
            return
        path = f"{base}/sixty-bench-{os.getpid()}-{name}"
        try:
            os.mkdir(path)
        except OSError:
            return
        self.path = path
        if self.seconds() is None:
            self.remove()

    def add(self, pid):
        if self.path is None:
            return
        try:
            with open(f"{self.path}/cgroup.procs", "w") as f:
                f.write(f"{pid}\n")
        except OSError as e:
            print(f"bench: cannot account for process {pid} in {self.path} ({e}); fleet/broker CPU not shown")
            self.remove()

    def seconds(self):
        if self.path is None:
            return None
        try:
            if self.v1:
                return int(open(f"{self.path}/cpuacct.usage").read()) / 1e9
            for line in open(f"{self.path}/cpu.stat"):
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        except (OSError, ValueError):
            pass
        return None

    def remove(self):
        """Moves whatever is left in it back to the parent group and removes it."""
        if self.path is None:
            return
        path, self.path = self.path, None
        try:
            for pid in open(f"{path}/cgroup.procs").read().split():
                try:
                    with open(f"{os.path.dirname(path)}/cgroup.procs", "w") as f:
                        f.write(f"{pid}\n")
                except OSError:
                    pass
            os.rmdir(path)
        except OSError:
            pass


def ssh_options(fleet):
    return ["-i", fleet.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", f"KexAlgorithms={KEX}",
            "-o", f"HostKeyAlgorithms={HOSTKEY}", "-F", "/dev/null"]


def busy():
    """CPU seconds the whole machine has spent busy (every process, the fleet's sshds included)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(argv, env=None, stdin=None, cwd=None, accounts=None):
    """Runs argv; returns wall, CPU (user+sys of it and all it waited for: the runner's side),
    the CPU of each of `accounts` ("fleet", "broker") meanwhile (None where not accountable), the
    whole machine's busy CPU, own peak RSS (MB), largest peak RSS in its tree (MB), exit status,
    output."""
    out = tempfile.TemporaryFile()
    accounts = accounts or {}
    accounts_before = {name: a.seconds() for name, a in accounts.items()}
    busy_before = busy()
    start = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, cwd=cwd)
    own = [0]
    finished = threading.Event()

    def sample():
        while not finished.is_set():
            try:
                for line in open(f"/proc/{p.pid}/status"):
                    if line.startswith("VmHWM:"):
                        own[0] = max(own[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    if stdin:
        p.stdin.write(stdin.encode())
        p.stdin.close()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    finished.set()
    t.join()
    out.seek(0)
    result = {
        "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "machine": busy() - busy_before, "own_mb": own[0] / 1024,
        "tree_mb": usage.ru_maxrss / 1024, "status": p.returncode, "output": out.read().decode(errors="replace"),
    }
    for name in ("fleet", "broker"):
        before, account = accounts_before.get(name), accounts.get(name)
        after = account.seconds() if account else None
        result[name] = after - before if before is not None and after is not None else None
    return result


class Tools:
    def __init__(self, fleet, work):
        self.fleet = fleet
        self.work = work
        self.env = dict(os.environ)
        self.env.update({
            "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true", "SIXTY_HISTORY": f"{work}/history.sqlite",
            "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
            "ANSIBLE_LOCAL_TEMP": f"{work}/ansible-tmp",
            "ANSIBLE_SSH_ARGS": " ".join(["-o ControlMaster=auto", "-o ControlPersist=60s",
                                          f"-o KexAlgorithms={KEX}", f"-o HostKeyAlgorithms={HOSTKEY}",
                                          "-o UserKnownHostsFile=/dev/null"]),
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_NOCOLOR": "1",
        })
        self.env["PATH"] = f"{VENV}/bin:" + self.env["PATH"]

    def measure(self, argv, **options):
        """measure(), with the fleet's and the broker's CPU."""
        return measure(argv, accounts=self.fleet.accounts, **options)

    def files(self, n):
        f = self.fleet
        w = f"{self.work}/n{n}"
        if os.path.isdir(w):
            return w
        os.makedirs(w)
        addrs = f.addresses[:n]
        with open(f"{w}/inventory.yml", "w") as out:
            out.write("hosts:\n")
            for i, a in enumerate(addrs):
                out.write(f"  h{i + 1}: {{address: {a}, port: {f.agent_port}, user: {f.user}, instance_id: i-{i + 1:016x}}}\n")
        with open(f"{w}/hosts.txt", "w") as out:
            out.write("".join(f"{f.user}@{a}:{f.key_port}\n" for a in addrs))
        with open(f"{w}/addresses.txt", "w") as out:
            out.write("".join(f"{a}\n" for a in addrs))
        with open(f"{w}/ansible.ini", "w") as out:
            out.write("[fleet]\n")
            for a in addrs:
                out.write(f"{a} ansible_port={f.key_port} ansible_user={f.user} ansible_ssh_private_key_file={f.key}\n")
        return w

    def policy(self, parallelism, variant="sixty"):
        """The policy of a Sixty column: what the other tools get too (the parallelism, no host
        key checking) and, beyond the defaults, only what the column is about."""
        path = f"{self.work}/policy-{variant}-{parallelism}.yml"
        push = {
            "sixty": "",
            "sixty-certificates": "push: {mode: certificate}\n",
            "sixty-tuned": f"push: {{rate: 1000, burst: {max(parallelism, 20)}, ttl: 60s, margin: 15s, key_type: ecdsa}}\n",
        }[variant]
        with open(path, "w") as out:
            out.write(f"concurrency: {parallelism}\nhost_key_checking: off\n{push}")
        return path

    def report(self, variant):
        """The run report of the last run of a Sixty column."""
        return f"{self.work}/report-{variant}.json"

    # Ad-hoc: one command on every host.
    def sixty_adhoc(self, n, par, command, variant="sixty"):
        w = self.files(n)
        return self.measure([SIXTY, "exec", "all", "-i", f"{w}/inventory.yml", "--policy", self.policy(par, variant),
                             "--endpoint", self.fleet.endpoint, "--no-progress", "--report", self.report(variant),
                             "--", *command], env=self.env)

    def xargs_adhoc(self, n, par, command):
        w = self.files(n)
        argv = ["xargs", "-P", str(par), "-I{}", "ssh", *ssh_options(self.fleet), "-p", str(self.fleet.key_port),
                "-l", self.fleet.user, "{}", *command]
        return self.measure(argv, env=self.env, stdin=open(f"{w}/addresses.txt").read())

    def pssh_adhoc(self, n, par, command):
        w = self.files(n)
        options = []
        for o in ssh_options(self.fleet):
            options += ["-x", o]
        return self.measure(["parallel-ssh", "-h", f"{w}/hosts.txt", "-p", str(par), "-t", "0", *options,
                             " ".join(command)], env=self.env)

    def parallelssh_adhoc(self, n, par, command):
        w = self.files(n)
        script = (
            "import sys\n"
            "from pssh.clients import ParallelSSHClient\n"
            f"hosts = open('{w}/addresses.txt').read().split()\n"
            f"client = ParallelSSHClient(hosts, user='{self.fleet.user}', port={self.fleet.key_port}, pkey='{self.fleet.key}',"
            f" pool_size={par}, num_retries=1, timeout=60)\n"
            f"output = client.run_command({' '.join(command)!r}, stop_on_errors=False)\n"
            "client.join(output)\n"
            "bad = [o.host for o in output if o.exception is not None or o.exit_code != 0]\n"
            "print('failed:', len(bad), bad[:3])\n"
            "sys.exit(1 if bad else 0)\n"
        )
        return self.measure([f"{VENV}/bin/python", "-c", script], env=self.env)

    def ansible_env(self):
        # A fresh ControlPersist directory per run: no connection left by an earlier workload.
        self.runs = getattr(self, "runs", 0) + 1
        return dict(self.env, ANSIBLE_SSH_CONTROL_PATH_DIR=f"{self.work}/ansible-cp-{self.runs}")

    def ansible_adhoc(self, n, par, command):
        w = self.files(n)
        env = self.ansible_env()
        m = self.measure([f"{VENV}/bin/ansible", "all", "-i", f"{w}/ansible.ini", "-m", "command", "-a",
                          " ".join(command), "-f", str(par), "-o"], env=env)
        self.close_ansible_masters(env)
        return m

    def close_ansible_masters(self, env):
        """Ends the ControlPersist masters Ansible leaves behind (60 s otherwise), through their
        sockets, after its run is measured: they would linger into the next tool's run."""
        directory = env["ANSIBLE_SSH_CONTROL_PATH_DIR"]
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={directory}/{name}", "-O", "exit", "x"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # Playbooks: five tasks per host.
    TASKS = [["true"], ["uname", "-r"], ["echo", "five tasks"], ["test", "-d", "/tmp"], ["date", "-u"]]

    def sixty_playbook(self, n, par, variant="sixty"):
        w = self.files(n)
        path = f"{w}/five.yml"
        with open(path, "w") as out:
            out.write("name: five\nhosts: all\ntasks:\n")
            for i, t in enumerate(self.TASKS):
                out.write(f"  - name: t{i + 1}\n    command: {json.dumps(t)}\n")
        return self.measure([SIXTY, "run", path, "-i", f"{w}/inventory.yml", "--policy", self.policy(par, variant),
                             "--endpoint", self.fleet.endpoint, "--no-progress", "--report",
                             self.report(variant)], env=self.env)

    def ansible_playbook(self, n, par):
        w = self.files(n)
        path = f"{w}/five-ansible.yml"
        with open(path, "w") as out:
            out.write("- hosts: all\n  gather_facts: false\n  tasks:\n")
            for i, t in enumerate(self.TASKS):
                out.write(f"    - name: t{i + 1}\n      command: {json.dumps(' '.join(t))}\n")
        env = self.ansible_env()
        m = self.measure([f"{VENV}/bin/ansible-playbook", "-i", f"{w}/ansible.ini", "-f", str(par), path], env=env)
        self.close_ansible_masters(env)
        return m


def login_mode(data):
    """How the run logged in, from its report: `key/ecdsa`, `certificate/ecdsa`, ..."""
    pushes = data.get("pushes") or {}
    return f"{pushes.get('mode', '?')}/{pushes.get('key_type', '?')}"


def report_stats(path):
    try:
        data = json.load(open(path))
    except (OSError, ValueError):
        return None
    hosts = [h for play in data.get("plays", []) for h in play.get("hosts", {}).values()]
    latencies = sorted(h["push_to_auth_ms"] for h in hosts if "push_to_auth_ms" in h)
    auth_failures = sum(1 for h in hosts if h.get("status") == "unreachable")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
    pushes = sum(len(h.get("pushes", [])) for h in hosts)
    return {"hosts": len(hosts), "ok": sum(1 for h in hosts if h.get("status") == "ok"),
            "login": login_mode(data),
            "auth_failures": auth_failures, "p99_push_auth_ms": p99, "pushes": pushes,
            "throttled": (data.get("pushes") or {}).get("throttled")}


# Tools measured in the first round only: they are several times slower than the rest, so more
# rounds would add many minutes and change no conclusion (--once, BENCH_ONCE; empty to repeat them too).
ONCE = set(filter(None, os.environ.get("BENCH_ONCE", "ansible,parallel-ssh").split(",")))

# Sixty's columns: the name --tools takes, and the one the tables print.
SIXTY_COLUMNS = {"sixty": "sixty", "sixty-certificates": "sixty (certificates)", "sixty-tuned": "sixty (tuned)"}
OTHER_TOOLS = ["xargs", "pssh", "parallel-ssh", "ansible"]
TOOL_ALIASES = {"sixty-cert": "sixty-certificates", "sixty-certs": "sixty-certificates",
                "sixty-certificate": "sixty-certificates", "xargs-ssh": "xargs", "parallel_ssh": "parallel-ssh"}
DEFAULT_TOOLS = "sixty,sixty-certificates,xargs,pssh,parallel-ssh,ansible"
DEFAULT_WORKLOADS = "a50x10,a50x50,a200x10,a200x50,b,c"


def display(tool):
    return SIXTY_COLUMNS.get(tool, tool)


def median_runs(title, tools, repeat, run):
    """Runs run(tool) for every tool, `repeat` rounds, rotating the order; prints every run and
    returns (tool, median run by wall time, runs)."""
    runs = {tool: [] for tool in tools}
    for r in range(repeat):
        order = tools[r % len(tools):] + tools[:r % len(tools)]
        for tool in order:
            if r > 0 and tool in ONCE:
                continue
            m = run(tool)
            runs[tool].append(m)
            fleet = f", fleet cpu {m['fleet']:.2f} s" if m.get("fleet") is not None else ""
            print(f"    {title} round {r + 1}: {display(tool)} {m['wall']:.2f} s (all cpu {m['machine']:.1f} s{fleet},"
                  f" exit {m['status']})")
            sys.stdout.flush()
    rows = []
    for tool in tools:
        ordered = sorted(runs[tool], key=lambda m: m["wall"])
        rows.append((tool, ordered[(len(ordered) - 1) // 2], runs[tool]))
    return rows


def table(title, rows):
    print(f"\n{title}")
    print(f"{'tool':<22}{'wall s':>9}{'cpu s':>9}{'fleet s':>9}{'broker s':>9}{'all cpu s':>10}{'own MB':>9}"
          f"{'max MB':>9}{'exit':>6}{'x Sixty':>9}")
    # "x Sixty" is over the first Sixty column: the defaults, when it ran.
    base = next((r for r in rows if r[0].startswith("sixty")), None)

    def seconds(value):
        return f"{value:>9.2f}" if value is not None else f"{'-':>9}"
    for name, m in rows:
        ratio = m["wall"] / base[1]["wall"] if base else float("nan")
        print(f"{name:<22}{m['wall']:>9.2f}{m['cpu']:>9.2f}{seconds(m.get('fleet'))}{seconds(m.get('broker'))}"
              f"{m['machine']:>10.1f}{m['own_mb']:>9.0f}{m['tree_mb']:>9.0f}{m['status']:>6}{ratio:>9.2f}")
    ratios(rows)
    sys.stdout.flush()


def ratios(rows):
    """For each Sixty column of `rows`: its wall time over the xargs-ssh floor's, pssh's and
    parallel-ssh's (below 1: Sixty is faster), Ansible's over its (above 1: Sixty is faster),
    and its own peak memory. A dash where that tool did not run here (or failed)."""
    by_name = {name: m for name, m in rows}

    def other(*names):
        return next((by_name[n] for n in names if n in by_name), None)
    others = {"xargs": other("xargs"), "pssh": other("pssh"), "parallel-ssh": other("parallel-ssh"),
              "ansible": other("ansible", "ansible-playbook")}
    sixties = [(name, m) for name, m in rows if name.startswith("sixty")]
    if not sixties:
        return

    def ratio(numerator, denominator):
        if numerator is None or denominator is None or numerator["status"] != 0 or denominator["status"] != 0:
            return f"{'-':>14}"
        return f"{numerator['wall'] / denominator['wall']:>13.2f}x"
    print(f"  wall time ratios (sixty/tool below 1, ansible/sixty above 1: Sixty is faster); Sixty's peak memory")
    print(f"  {'':<22}{'sixty/xargs':>14}{'sixty/pssh':>14}{'sixty/par-ssh':>14}{'ansible/sixty':>14}"
          f"{'own MB':>9}{'max MB':>9}")
    for name, m in sixties:
        print(f"  {name:<22}{ratio(m, others['xargs'])}{ratio(m, others['pssh'])}{ratio(m, others['parallel-ssh'])}"
              f"{ratio(others['ansible'], m)}{m['own_mb']:>9.0f}{m['tree_mb']:>9.0f}")


def install():
    missing = []
    if not shutil.which("parallel-ssh"):
        missing.append("pssh")
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not os.path.exists(f"{VENV}/bin/ansible") or not os.path.exists(f"{VENV}/bin/python"):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([f"{VENV}/bin/pip", "install", "-q", "ansible-core", "parallel-ssh"], check=True)


def versions():
    def first(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    try:  # no venv when no tool needs one (--tools without pssh, parallel-ssh, ansible)
        pip = subprocess.run([f"{VENV}/bin/pip", "list", "--format", "json"], capture_output=True, text=True).stdout
    except OSError:
        pip = ""
    pkgs = {p["name"].lower(): p["version"] for p in json.loads(pip or "[]")}
    return {
        "sixty": first([SIXTY, "--version"]), "openssh": first(["ssh", "-V"]),
        "ansible-core": pkgs.get("ansible-core", "?"), "parallel-ssh": pkgs.get("parallel-ssh", "?"),
        "ssh2-python": pkgs.get("ssh2-python", "?"), "pssh": first(["dpkg-query", "-W", "-f", "${Version}", "pssh"]),
        "python": sys.version.split()[0], "cores": os.cpu_count(),
        "kernel": os.uname().release,
    }


def arguments():
    parser = argparse.ArgumentParser(
        description="Sixty against an xargs-ssh floor, pssh, parallel-ssh and Ansible on a local fleet of real "
                    "sshd hosts on loopback (run as root). Each option's default comes from the environment "
                    "variable named in its help.",
        epilog="Sixty's columns: sixty (the defaults: only concurrency and host_key_checking in its policy), "
               "sixty-certificates (also push: {mode: certificate}; 'sixty-cert' for short), sixty-tuned (the "
               "old tuned key push: push: {rate: 1000, burst: ..., key_type: ecdsa}). Example, a quick check: "
               "bench/fleet.py --workloads a10x10 --repeat 1")
    parser.add_argument("--workloads", default=os.environ.get("BENCH_WORKLOADS", DEFAULT_WORKLOADS),
                        help="comma-separated: aNxP (true on N hosts at parallelism P), b (5-task playbook on 50 "
                             "hosts, parallelism 10), c (sleep 2 on 200 hosts, parallelism 5); "
                             f"BENCH_WORKLOADS, default {DEFAULT_WORKLOADS}")
    parser.add_argument("--tools", default=os.environ.get("BENCH_TOOLS", DEFAULT_TOOLS),
                        help=f"comma-separated, of {', '.join([*SIXTY_COLUMNS, *OTHER_TOOLS])}; "
                             f"BENCH_TOOLS, default {DEFAULT_TOOLS}")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("BENCH_REPEAT", "3")),
                        help="rounds per workload, each tool once a round; the table shows medians; "
                             "BENCH_REPEAT, default 3")
    parser.add_argument("--once", default=os.environ.get("BENCH_ONCE", "ansible,parallel-ssh"),
                        help="comma-separated tools measured in the first round only (empty: none); "
                             "BENCH_ONCE, default ansible,parallel-ssh")
    parser.add_argument("--user", default=USER,
                        help="the login user on the fleet (created and removed unless it exists); "
                             "BENCH_USER, default sixtybench")
    parser.add_argument("--keep", action="store_true", default=os.environ.get("BENCH_KEEP") == "1",
                        help="keep the work directory under /var/tmp (logs, reports, configs); BENCH_KEEP=1")
    args = parser.parse_args()

    def names(text):
        out = []
        for name in filter(None, (x.strip() for x in text.split(","))):
            name = TOOL_ALIASES.get(name, name)
            if name not in SIXTY_COLUMNS and name not in OTHER_TOOLS:
                parser.error(f"unknown tool '{name}'; expected some of: {', '.join([*SIXTY_COLUMNS, *OTHER_TOOLS])}")
            if name not in out:
                out.append(name)
        return out
    args.tools = names(args.tools)
    if not args.tools:
        parser.error("no tools chosen")
    args.once = set(names(args.once))
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for wl in args.workloads:
        if wl in ("b", "c"):
            continue
        try:
            n, par = (int(x) for x in wl[1:].split("x")) if wl.startswith("a") else (0, 0)
        except ValueError:
            n = par = 0
        if n < 1 or par < 1:
            parser.error(f"unknown workload '{wl}'; expected aNxP (like a50x10), b or c")
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    return args


def fleet_size(workloads):
    """Hosts the workloads need: the largest (a) workload, 50 for (b), 200 for (c)."""
    size = 20  # the warm-up's
    for wl in workloads:
        size = max(size, {"b": 50, "c": 200}.get(wl) or int(wl[1:].split("x")[0]))
    return size


def main():
    global USER
    args = arguments()
    if os.geteuid() != 0:
        raise SystemExit("bench/fleet.py needs root (sshd switches users); run it as root.")
    for path in (SIXTY, AGENT):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"{path} is missing: run make release first.")
    USER = args.user
    ONCE.clear()
    ONCE.update(args.once)
    workloads, tools, repeat = args.workloads, args.tools, args.repeat
    if any(tool in tools for tool in ("pssh", "parallel-ssh", "ansible")):
        install()
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    size = fleet_size(workloads)
    work = tempfile.mkdtemp(prefix="sixty-bench-fleet-", dir="/var/tmp")
    os.chmod(work, 0o755)
    fleet = None
    try:
        fleet = Fleet(size, work)
        t = Tools(fleet, work)
        adhoc = {"xargs": t.xargs_adhoc, "pssh": t.pssh_adhoc, "parallel-ssh": t.parallelssh_adhoc,
                 "ansible": t.ansible_adhoc}
        for variant in SIXTY_COLUMNS:
            adhoc[variant] = lambda n, par, command, variant=variant: t.sixty_adhoc(n, par, command, variant)
        sixties = [x for x in tools if x in SIXTY_COLUMNS]

        def sixty_stats():
            return {display(x): report_stats(t.report(x)) for x in sixties}
        print("versions:", json.dumps(versions()))
        print(f"fleet: {size} hosts on 127.30.0.x, {-(-size // PER_SSHD)} sshds, KexAlgorithms {KEX}, "
              f"host key {HOSTKEY}; the broker is also a certificate authority (prefer: false)")
        for x in sixties:
            print(f"policy of {display(x)} (at parallelism 10): " + open(t.policy(10, x)).read().strip().replace("\n", "; "))
        # One unmeasured pass per tool first, so no tool pays for cold caches (its binaries, the
        # sshds' first logins, the broker's first requests) in the measured runs.
        warm = min(20, size)
        for tool in tools:
            m = adhoc[tool](warm, 10, ["true"])
            if m["status"] != 0:
                print(f"warm-up: {display(tool)} exited {m['status']}:\n{m['output'][-2000:]}")
        print(f"warm-up: each tool ran once on {warm} hosts (not measured)")
        if sixties:
            print(f"    sixty, warm-up: {sixty_stats()}")
        for wl in workloads:
            if wl.startswith("a"):
                n, par = (int(x) for x in wl[1:].split("x"))
                stats = {display(x): [] for x in sixties}

                def run(tool):
                    m = adhoc[tool](n, par, ["true"])
                    if tool in SIXTY_COLUMNS:
                        stats[display(tool)].append(report_stats(t.report(tool)))
                    return m
                rows = median_runs(f"a{n}x{par}", tools, repeat, run)
                table(f"(a) true on {n} hosts, parallelism {par} (median of {repeat})",
                      [(display(x), m) for x, m, _ in rows])
                for name, every in stats.items():
                    print(f"    {name}, every run: {every}")
            elif wl == "b":
                stats = {display(x): [] for x in sixties}
                players = [x for x in tools if x in SIXTY_COLUMNS or x == "ansible"]
                if not players:
                    continue

                def run(tool):
                    if tool in SIXTY_COLUMNS:
                        m = t.sixty_playbook(50, 10, tool)
                        stats[display(tool)].append(report_stats(t.report(tool)))
                        return m
                    return t.ansible_playbook(50, 10)
                rows = median_runs("b", players, repeat, run)
                names = {x: display(x).replace("sixty", "sixty run", 1) for x in SIXTY_COLUMNS}
                names["ansible"] = "ansible-playbook"
                table(f"(b) 5-task playbook on 50 hosts, parallelism 10 (median of {repeat})",
                      [(names[x], m) for x, m, _ in rows])
                for name, every in stats.items():
                    print(f"    {name}, every run: {every}")
            elif wl == "c":
                rows = []
                for tool in tools:
                    rows.append((display(tool), adhoc[tool](200, 5, ["sleep", "2"])))
                table("(c) sleep 2 on 200 hosts, parallelism 5 (a run far longer than the 60 s key window)", rows)
                for name, stats in sixty_stats().items():
                    print(f"    {name}: {stats} (authentication failures must be 0; p99 push->auth under 5000 ms)")
    finally:
        if fleet:
            fleet.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"bench: kept {work}")


if __name__ == "__main__":
    main()
