import Foundation
import Testing

/// `sixty run` against the local fleet: real sshd, a real broker, the agent, and keys pushed just
/// in time.
@Suite(.serialized) struct RunEndToEndTests {
  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func report(_ path: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  func hostsOf(_ report: [String: Any]) -> [String: [String: Any]] {
    let plays = report["plays"] as? [[String: Any]] ?? []
    return plays.first?["hosts"] as? [String: [String: Any]] ?? [:]
  }

  func processes(mentioning text: String) -> [String] { ProcessScan.processes(mentioning: text) }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func twentyHostsWithARefusingAHangingAndAFailingOne() throws {
    try withLocalFleet(LocalFleet(count: 20)) { fleet in
      // web-19 refuses connections (its sshd is stopped); web-20 accepts TCP and never speaks SSH.
      fleet.hosts[18].sshd?.stop()
      let silentPort = LocalProcess.freePort()
      let silent = try LocalProcess(
        LocalProcess.which("python3")!,
        [
          "-c",
          "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',\(silentPort)))\ns.listen(16)\nc=[]\nwhile True:\n  c.append(s.accept())\n",
        ], logPath: fleet.directory + "/silent.log")
      defer { silent.stop() }
      var inventory = try String(contentsOfFile: try fleet.writeInventory(), encoding: .utf8)
      inventory = inventory.replacingOccurrences(
        of: "port: \(fleet.hosts[19].port)\n", with: "port: \(silentPort)\n")
      let inventoryPath = try write(inventory, fleet.directory + "/inventory-run.yml")
      let playbook = try write(
        """
        name: e2e
        hosts: role=web
        policy:
          concurrency: 6
          max_failures: 5
          timeouts: {connect: 3s, task: 30s}
        tasks:
          - name: hello
            command: [echo, "hello from {{ host.name }}", "$(not expanded)"]
          - name: write
            shell: echo "{{ host.name }}" > /tmp/sixty-e2e-$PPID && cat /tmp/sixty-e2e-$PPID && rm /tmp/sixty-e2e-$PPID
            needs: [hello]
          - name: maybe fail
            shell: test "{{ host.name }}" != web-3
            needs: [hello]
          - name: after
            command: ["true"]
            needs: [maybe fail, write]
        """, fleet.directory + "/play.yml")
      let keyDir = fleet.directory + "/keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      var env = fleet.environment
      env["SIXTY_KEY_DIR"] = keyDir
      let reportPath = fleet.directory + "/report.json"
      let result = try SixtyBinary.run(
        ["run", playbook, "-i", inventoryPath, "--endpoint", fleet.endpoint, "--report", reportPath],
        environment: env)
      #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
      #expect(result.stdout.contains("web-1 | hello from web-1 $(not expanded)"))
      let hosts = hostsOf(try report(reportPath))
      #expect(hosts.count == 20)
      for index in 1...20 where ![3, 19, 20].contains(index) {
        #expect(
          hosts["web-\(index)"]?["status"] as? String == "ok", "web-\(index): \(hosts["web-\(index)"] ?? [:])"
        )
        #expect(hosts["web-\(index)"]?["push_to_auth_ms"] != nil)
      }
      let web1 = hosts["web-1"]?["tasks"] as? [[String: Any]] ?? []
      #expect(web1.first?["stdout"] as? String == "hello from web-1 $(not expanded)\n")
      #expect(web1.first?["exit_status"] as? Int == 0)
      #expect(web1.first?["started"] is String && web1.first?["ended"] is String)
      #expect(hosts["web-3"]?["status"] as? String == "failed")
      let web3 = hosts["web-3"]?["tasks"] as? [[String: Any]] ?? []
      #expect(web3.map { $0["status"] as? String } == ["ok", "ok", "failed", "skipped"])
      #expect(hosts["web-19"]?["status"] as? String == "unreachable")
      #expect(
        (hosts["web-19"]?["message"] as? String)?.contains("Connection refused") == true,
        "\(hosts["web-19"] ?? [:])")
      #expect(hosts["web-20"]?["status"] as? String == "unreachable")
      #expect(
        (hosts["web-20"]?["message"] as? String)?.contains("timed out") == true, "\(hosts["web-20"] ?? [:])")
      #expect(
        try FileManager.default.contentsOfDirectory(atPath: keyDir).isEmpty, "the key directory is wiped")
      #expect(processes(mentioning: keyDir).isEmpty, "no ssh process outlives the run")
    }
  }

  /// Each login makes sshd ask the agent, and the agent the broker, once when the client signs at
  /// once: the built-in client always does, and OpenSSH's does with the default key (ECDSA from a
  /// broker, in a PEM file with no .pub beside it). OpenSSH offers an Ed25519 key first and
  /// signs it after, which makes two.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func theDefaultKeyMakesOneAgentFetchPerLogin() throws {
    try withLocalFleet(LocalFleet(count: 4)) { fleet in
      func fetches() throws -> Int {
        let got = try runProgram(
          LocalProcess.which("python3")!,
          [
            "-c",
            "import urllib.request;print(urllib.request.urlopen('\(fleet.endpoint)/metrics').read().decode())",
          ])
        let line = got.stdout.split(separator: "\n").first {
          $0.hasPrefix("sixty_broker_agent_fetches_total{outcome=\"ok\"}")
        }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
      }
      let inventory = try fleet.writeInventory()
      let ed25519 = try write("push: {key_type: ed25519}\n", fleet.directory + "/ed25519.yml")
      let ecdsa = try write("push: {key_type: ecdsa}\n", fleet.directory + "/ecdsa.yml")
      let ed25519OpenSSH = try write(
        "push: {key_type: ed25519}\nssh_client: openssh\n", fleet.directory + "/ed25519-openssh.yml")
      let openSSH = try write("ssh_client: openssh\n", fleet.directory + "/openssh.yml")
      for (policy, perLogin) in [(nil, 1), (ed25519, 1), (ecdsa, 1), (ed25519OpenSSH, 2), (openSSH, 1)] {
        let before = try fetches()
        let result = try SixtyBinary.run(
          ["exec", "all", "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"]
            + (policy.map { ["--policy", $0] } ?? []) + ["--", "true"],
          environment: fleet.environment)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(try fetches() - before == 4 * perLogin, "policy \(policy ?? "default")")
      }
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aFiveSecondTTLStillAuthenticatesEveryHostOfALongRun() throws {
    try withLocalFleet(LocalFleet(count: 8, ttl: "5s")) { fleet in
      let playbook = try write(
        """
        name: slow
        hosts: all
        policy:
          concurrency: 1
          push: {ttl: 5s, margin: 2s}
        tasks:
          - name: work
            command: [sleep, "4"]
        """, fleet.directory + "/slow.yml")
      let reportPath = fleet.directory + "/report.json"
      let start = Date()
      let result = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          reportPath,
        ],
        environment: fleet.environment)
      #expect(Date().timeIntervalSince(start) > 30)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
      let hosts = hostsOf(try report(reportPath))
      #expect(hosts.count == 8)
      for (name, host) in hosts {
        #expect(host["status"] as? String == "ok", "\(name)")
        #expect((host["push_to_auth_ms"] as? Int ?? 99_999) < 3000, "\(name): \(host)")
      }
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func sigintMidRunLeavesNoSSHNoKeyAndAPartialReport() throws {
    try withLocalFleet(LocalFleet(count: 4)) { fleet in
      let playbook = try write(
        """
        name: long
        hosts: all
        policy: {concurrency: 2}
        tasks:
          - name: first
            command: [sleep, "3"]
          - name: second
            command: [sleep, "30"]
            needs: [first]
        """, fleet.directory + "/long.yml")
      let keyDir = fleet.directory + "/keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      var env = fleet.environment
      env["SIXTY_KEY_DIR"] = keyDir
      let reportPath = fleet.directory + "/report.json"
      let run = try LocalProcess(
        SixtyBinary.path,
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          reportPath,
        ],
        environment: env, logPath: fleet.directory + "/run.log")
      Thread.sleep(forTimeInterval: 1.5)
      kill(run.pid, SIGINT)  // first: let running tasks finish
      Thread.sleep(forTimeInterval: 3)
      kill(run.pid, SIGINT)  // second: kill them
      var waited = 0.0
      while run.isRunning && waited < 20 {
        Thread.sleep(forTimeInterval: 0.1)
        waited += 0.1
      }
      #expect(!run.isRunning, "sixty run did not stop: \(run.log)")
      #expect(run.log.contains("interrupted"), "\(run.log)")
      let report = try report(reportPath)
      #expect(report["exit_code"] as? Int == 4)
      let hosts = hostsOf(report)
      #expect(hosts.count == 4)
      // The first two hosts finished 'first' (it was running at the first Ctrl-C); none started 'second'
      // after it; the last two never started.
      #expect(hosts["web-1"]?["status"] as? String != "ok")
      #expect(hosts["web-3"]?["status"] as? String == "not started")
      #expect(
        try FileManager.default.contentsOfDirectory(atPath: keyDir).isEmpty, "the key directory is wiped")
      #expect(processes(mentioning: keyDir).isEmpty, "no ssh process outlives the run")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func execRunsAdHocCommandsWithGroupedOutputAndJUnit() throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let junit = fleet.directory + "/junit.xml"
      let result = try SixtyBinary.run(
        [
          "exec", "role=web", "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint,
          "--group-output",
          "--junit", junit, "--forks", "2", "--", "sh", "-c", "echo same; test {{ host.name }} != web-2",
        ], environment: fleet.environment)
      #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
      #expect(
        result.stdout.contains("---------------- command: web-1,web-3 ----------------\nexit 0\nsame\n"))
      #expect(result.stdout.contains("---------------- command: web-2 ----------------\nexit 1\nsame\n"))
      let xml = try String(contentsOfFile: junit, encoding: .utf8)
      #expect(xml.contains("<testsuites name=\"sixty exec\">"))
      #expect(xml.contains("tests=\"3\" failures=\"1\" skipped=\"0\""))
      #expect(
        xml.contains("<testcase classname=\"web-2\" name=\"command\"><failure message=\"exit status 1\"/>"))
      // A selector that matches nothing known is bad input, found before anything is pushed.
      let bad = try SixtyBinary.run(
        ["exec", "nosuch", "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--", "true"],
        environment: fleet.environment)
      #expect(bad.status == 2)
      #expect(bad.stderr.contains("targets 'nosuch', which is neither a group nor a host"))
    }
  }

  /// A host with one task runs it as its master connection's own session: one local ssh process
  /// per host. Its output, its exit status (255 included) and a dropped connection are told
  /// apart as with a multiplexed task.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aHostsOnlyTaskRunsAsItsMastersOwnSession() throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let marker = fleet.directory + "/dropped"
      // web-1 exits 255 itself; web-2's connection drops once (its sshd session is killed), then it
      // succeeds; web-3 takes a second, while the test looks at the local ssh processes.
      let playbook = try write(
        """
        name: single
        hosts: all
        policy: {ssh_client: openssh}
        tasks:
          - name: only
            shell: |
              case "{{ host.name }}" in
                web-1) echo "out web-1"; echo "err web-1" >&2; exit 255 ;;
                web-2) if [ ! -f \(marker) ]; then touch \(marker); p=$PPID; while ! grep -q '^sshd' /proc/$p/comm; do p=$(cut -d' ' -f4 /proc/$p/stat); done; kill -9 $p; fi; echo "out web-2" ;;
                *) sleep 1.5; echo "out {{ host.name }}" ;;
              esac
        """, fleet.directory + "/single.yml")
      let keyDir = fleet.directory + "/keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      var variables = fleet.environment
      variables["SIXTY_KEY_DIR"] = keyDir
      let environment = variables
      let reportPath = fleet.directory + "/report.json"
      // web-9 is pushed for (web-1's instance) but nothing listens at its port: its master fails
      // before authenticating, with ssh's own reason.
      let inventory = fleet.directory + "/inventory-9.yml"
      try
        (String(contentsOfFile: try fleet.writeInventory(), encoding: .utf8)
        + "  web-9:\n    address: 127.0.0.1\n    port: \(LocalProcess.freePort())\n    user: \(fleet.user)\n    instance_id: \(fleet.hosts[0].instanceID)\n")
        .write(toFile: inventory, atomically: true, encoding: .utf8)
      nonisolated(unsafe) var result: SixtyBinary.Result?
      let done = DispatchSemaphore(value: 0)
      Thread.detachNewThread {
        result = try? SixtyBinary.run(
          ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "--report", reportPath],
          environment: environment)
        done.signal()
      }
      var masters = Set<String>()
      var clients = 0
      while done.wait(timeout: .now() + 0.02) == .timedOut {
        for line in processes(mentioning: keyDir) where line.contains(" ssh ") || line.contains("/ssh ") {
          if line.contains("ControlMaster=no") { clients += 1 }
          if line.contains("ControlMaster=yes") { masters.insert(String(line.prefix { $0 != ":" })) }
        }
      }
      let run = try #require(result)
      #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
      #expect(clients == 0, "no multiplexed ssh client: each task ran in its master's session")
      #expect(
        masters.count >= 4, "a master per host (and one more for web-2's reconnection): \(masters.count)")
      let hosts = hostsOf(try report(reportPath))
      let web1 = hosts["web-1"]?["tasks"] as? [[String: Any]] ?? []
      #expect(hosts["web-1"]?["status"] as? String == "failed")
      #expect(hosts["web-1"]?["reconnects"] as? Int == 0, "a command's own 255 is not a lost connection")
      #expect(web1.first?["exit_status"] as? Int == 255)
      #expect(web1.first?["stdout"] as? String == "out web-1\n")
      #expect(web1.first?["stderr"] as? String == "err web-1\n")
      #expect(hosts["web-2"]?["status"] as? String == "ok", "\(hosts["web-2"] ?? [:])\n\(run.stdout)")
      #expect(hosts["web-2"]?["reconnects"] as? Int == 1)
      #expect((hosts["web-2"]?["pushes"] as? [String])?.count == 2)
      #expect((hosts["web-2"]?["tasks"] as? [[String: Any]])?.first?["stdout"] as? String == "out web-2\n")
      let web3 = hosts["web-3"]?["tasks"] as? [[String: Any]] ?? []
      #expect(hosts["web-3"]?["status"] as? String == "ok")
      #expect(web3.first?["stdout"] as? String == "out web-3\n")
      // The task's times cover its second of work, from authentication on.
      let iso = ISO8601DateFormatter()
      iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
      if let started = (web3.first?["started"] as? String).flatMap(iso.date(from:)),
        let ended = (web3.first?["ended"] as? String).flatMap(iso.date(from:)),
        let auth = (hosts["web-3"]?["authenticated"] as? String).flatMap(iso.date(from:))
      {
        #expect(ended.timeIntervalSince(started) >= 1.4)
        #expect(abs(started.timeIntervalSince(auth)) < 0.5)
      } else {
        Issue.record("web-3's task and authentication times are missing: \(hosts["web-3"] ?? [:])")
      }
      #expect(hosts["web-9"]?["status"] as? String == "unreachable")
      #expect(
        (hosts["web-9"]?["message"] as? String)?.hasSuffix("Connection refused") == true,
        "\(hosts["web-9"] ?? [:])")
      #expect(processes(mentioning: keyDir).isEmpty, "no ssh process outlives the run")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aDroppedConnectionIsPushedAgainAndReconnectedOnce() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      // The task kills its own sshd session process (its nearest sshd ancestor): the master
      // connection drops under it. On web-1 it does so once (then succeeds after the reconnect);
      // on web-2 every time.
      let marker = fleet.directory + "/dropped"
      let playbook = try write(
        """
        name: drops
        hosts: all
        tasks:
          - name: first
            command: ["true"]
          - name: drop
            shell: test "{{ host.name }}" = web-1 -a -f \(marker)-{{ host.name }} || { touch \(marker)-{{ host.name }}; p=$PPID; while ! grep -q '^sshd' /proc/$p/comm; do p=$(cut -d' ' -f4 /proc/$p/stat); done; kill -9 $p; }
            needs: [first]
          - name: after
            command: [echo, survived]
            needs: [drop]
        """, fleet.directory + "/drops.yml")
      let reportPath = fleet.directory + "/report.json"
      let result = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          reportPath,
        ],
        environment: fleet.environment)
      #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
      let hosts = hostsOf(try report(reportPath))
      #expect(hosts["web-1"]?["status"] as? String == "ok", "\(hosts["web-1"] ?? [:])")
      #expect(hosts["web-1"]?["reconnects"] as? Int == 1)
      #expect((hosts["web-1"]?["pushes"] as? [String])?.count == 2)
      #expect(result.stdout.contains("web-1 | survived"))
      #expect(hosts["web-2"]?["status"] as? String == "unreachable")
      #expect(
        hosts["web-2"]?["message"] as? String
          == "the connection to web-2 was lost again after reconnecting once")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func scriptsAndUploadsGoOverTheConnection() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      _ = try write(
        "echo \"script ran as $(id -un)\"\necho \"lines: $(printf 'a\\nb\\n' | wc -l)\"\n",
        fleet.directory + "/check.sh")
      _ = try write("payload with 'quotes' and $dollars\n", fleet.directory + "/payload.txt")
      let destination = fleet.directory + "/uploaded"
      let playbook = try write(
        """
        name: transfer
        hosts: all
        tasks:
          - name: script
            script: check.sh
          - name: upload
            upload: {src: payload.txt, dest: \(destination), mode: "0600"}
          - name: show
            command: [cat, \(destination)]
            needs: [upload]
        """, fleet.directory + "/transfer.yml")
      let result = try SixtyBinary.run(
        ["run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint],
        environment: fleet.environment)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
      #expect(result.stdout.contains("web-1 | script ran as \(fleet.user)"))
      #expect(result.stdout.contains("web-1 | lines: 2"))
      #expect(result.stdout.contains("web-1 | payload with 'quotes' and $dollars"))
      var info = stat()
      #expect(stat(destination, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }
  }

  /// `env:` values are secrets as often as not: no process's command line shows them, on the
  /// runner (ssh's arguments) or on the host (the remote shell's), while the task sees them.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func environmentValuesAreOnNoCommandLine() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let secret = "s3cret-\(UUID().uuidString)"
      let playbook = try write(
        """
        name: env
        hosts: all
        tasks:
          - name: with-env
            shell: sleep 2.9; printf '%s|%s' "$TOKEN" "$OTHER"; pwd
            cwd: /usr
            env: {TOKEN: "\(secret)", OTHER: "it's $(id)"}
          - name: script-env
            script: env.sh
            env: {TOKEN: "\(secret)"}
        """, fleet.directory + "/env.yml")
      _ = try write("printf 'script sees %s\\n' \"$TOKEN\"\n", fleet.directory + "/env.sh")
      let run = try LocalProcess(
        SixtyBinary.path,
        ["run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--no-progress"],
        environment: fleet.environment, logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      var seen: [String] = []
      let deadline = Date().addingTimeInterval(30)
      var sawTask = false
      while run.isRunning && Date() < deadline {
        if processes(mentioning: "sleep 2.9").isEmpty == false { sawTask = true }
        seen += processes(mentioning: secret)
        Thread.sleep(forTimeInterval: 0.05)
      }
      #expect(sawTask, "the task was never seen running: \(run.log)")
      #expect(seen.isEmpty, "a command line shows the secret: \(seen)")
      #expect(run.exitStatus == 0, "\(run.log)")
      #expect(run.log.contains("web-1 | \(secret)|it's $(id)/usr"), "\(run.log)")
      #expect(run.log.contains("web-1 | script sees \(secret)"), "\(run.log)")
    }
  }

  /// `accept-new` is trust on first use across runs: a host's key is recorded once, beside the
  /// history, and a changed key is refused by the next run and by `sixty ssh`, naming the host.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aChangedHostKeyIsRefusedOnTheNextRunAndBySSH() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let playbook = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      let inventory = try fleet.writeInventory()
      let arguments = ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint]
      let first = try SixtyBinary.run(arguments, environment: fleet.environment)
      #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
      let knownHosts = fleet.directory + "/known_hosts"
      // Found by name (Debian's ssh_config hashes the names it records).
      let lookup = try runProgram(
        "/usr/bin/ssh-keygen", ["-F", "[127.0.0.1]:\(fleet.hosts[0].port)", "-f", knownHosts])
      #expect(lookup.status == 0 && lookup.stdout.contains("ssh-ed25519"), "\(lookup.stdout)\(lookup.stderr)")
      let again = try SixtyBinary.run(arguments, environment: fleet.environment)
      #expect(again.status == 0, "a second run with the same key: \(again.stdout)\n\(again.stderr)")

      // The host gets a new key (as after a reinstall, or an impostor).
      let hostDir = fleet.hosts[0].directory
      try? FileManager.default.removeItem(atPath: hostDir + "/host_key")
      try? FileManager.default.removeItem(atPath: hostDir + "/host_key.pub")
      let keygen = try runProgram(
        "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostDir + "/host_key"])
      try #require(keygen.status == 0)
      try #require(kill(try #require(fleet.hosts[0].sshd?.pid), SIGHUP) == 0)
      Thread.sleep(forTimeInterval: 0.5)
      #expect(LocalProcess.waitForPort(fleet.hosts[0].port))
      let changed = try SixtyBinary.run(arguments, environment: fleet.environment)
      #expect(changed.status == 1, "\(changed.stdout)\n\(changed.stderr)")
      let text = changed.stdout + changed.stderr
      #expect(
        text.contains(
          "the host key of web-1 (127.0.0.1:\(fleet.hosts[0].port)) is not the one recorded in \(knownHosts)"),
        "\(text)")
      #expect(
        text.contains("ssh-keygen -R '[127.0.0.1]:\(fleet.hosts[0].port)' -f '\(knownHosts)'"), "\(text)")
      #expect(!text.contains("web-1 | hi"), "the task ran on a host with a changed key: \(text)")
      let ssh = try SixtyBinary.run(
        [
          "ssh", "web-1", "-i", inventory, "--endpoint", fleet.endpoint, "-o", "BatchMode=yes", "--", "echo",
          "in",
        ],
        environment: fleet.environment)
      #expect(ssh.status == 255, "\(ssh.stdout)\n\(ssh.stderr)")
      #expect(ssh.stderr.contains("Host key verification failed"), "\(ssh.stderr)")
      #expect(!ssh.stdout.contains("in"))
    }
  }
}
