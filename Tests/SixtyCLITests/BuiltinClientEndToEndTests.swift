import Foundation
import Testing

/// Certificate mode's built-in SSH client against real sshd hosts: every kind of task, exit
/// codes, output, stdin, timeouts, trust on first use and a changed host key, and the hosts it
/// hands to OpenSSH.
@Suite(.serialized) struct BuiltinClientEndToEndTests {
  static var canRun: Bool { LocalFleet.canRun }

  /// The report's hosts: name → (status, message, tasks).
  func hosts(_ report: String) throws -> [String: [String: Any]] {
    let data = try #require(FileManager.default.contents(atPath: report))
    let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    return try #require((json["plays"] as? [[String: Any]])?.first?["hosts"] as? [String: [String: Any]])
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func everyKindOfTaskRunsOverTheBuiltinClient() throws {
    try withLocalFleet(LocalFleet(count: 2, certificates: true, preferCertificates: true)) { fleet in
      let script = fleet.directory + "/report.sh"
      try "echo \"script sees $GREETING\"\nexit 0\n".write(toFile: script, atomically: true, encoding: .utf8)
      let upload = fleet.directory + "/payload.txt"
      // Larger than one 64 KiB chunk and than one SSH packet.
      let payload = String(repeating: "0123456789abcdef", count: 20_000)
      try payload.write(toFile: upload, atomically: true, encoding: .utf8)
      let destination = fleet.directory + "/uploaded-{{ host.name }}.txt"
      let playbook = fleet.directory + "/kinds.yml"
      try """
      name: kinds
      hosts: all
      policy: {host_key_checking: off}
      tasks:
        - name: argv
          command: [sh, -c, "echo out; echo err >&2"]
        - name: shell
          shell: "cd /usr && pwd && echo $0"
        - name: env
          shell: "echo \\"value=$GREETING\\""
          env: {GREETING: "hello there"}
        - name: script
          script: \(script)
          env: {GREETING: "from stdin"}
        - name: upload
          upload: {src: \(upload), dest: "\(destination)", mode: "0600"}
        - name: allowed
          shell: "exit 3"
          ok_codes: [0, 3]
        - name: slow
          shell: "sleep 31.7"
          timeout: 2s
      """.write(toFile: playbook, atomically: true, encoding: .utf8)
      let report = fleet.directory + "/kinds.json"
      let run = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report", report,
          "--no-progress", "-vv",
        ], environment: fleet.environment)
      #expect(run.stderr.contains("sixty: ssh client: built-in"), "\(run.stderr)")
      #expect(run.stderr.contains("(built-in ssh client)"), "\(run.stderr)")
      #expect(!run.stderr.contains("ControlMaster"), "no ssh process: \(run.stderr)")
      let hosts = try hosts(report)
      #expect(hosts.count == 2)
      for (name, host) in hosts {
        let tasks = try #require(host["tasks"] as? [[String: Any]])
        func task(_ index: Int) -> [String: Any] { tasks[index] }
        #expect(task(0)["status"] as? String == "ok", "\(name): \(task(0))")
        #expect(
          task(0)["stdout"] as? String == "out\n" && task(0)["stderr"] as? String == "err\n", "\(task(0))")
        #expect(task(1)["stdout"] as? String == "/usr\nsh\n", "\(task(1))")
        #expect(task(2)["stdout"] as? String == "value=hello there\n", "\(task(2))")
        #expect(task(3)["stdout"] as? String == "script sees from stdin\n", "\(task(3))")
        #expect(task(4)["status"] as? String == "ok", "\(task(4))")
        let copied = try String(contentsOfFile: fleet.directory + "/uploaded-\(name).txt", encoding: .utf8)
        #expect(copied == payload, "\(copied.utf8.count) bytes uploaded of \(payload.utf8.count)")
        let mode =
          try FileManager.default.attributesOfItem(atPath: fleet.directory + "/uploaded-\(name).txt")[
            .posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(task(5)["status"] as? String == "ok" && task(5)["exit_status"] as? Int == 3, "\(task(5))")
        #expect(task(6)["status"] as? String == "timed out", "\(task(6))")
        #expect(host["status"] as? String == "timed out", "\(host)")
      }
      // The timed-out task's remote process was stopped (a duration no other test sleeps for).
      var left = ""
      for _ in 0..<50 {
        left = try runProgram("/usr/bin/pgrep", ["-f", "sleep 31[.]7"]).stdout
        if left.isEmpty { break }
        Thread.sleep(forTimeInterval: 0.1)
      }
      #expect(left.isEmpty, "still running: \(left)")
    }
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func trustOnFirstUseRecordsKeysAndRefusesAChangedOne() throws {
    try withLocalFleet(LocalFleet(count: 2, certificates: true, preferCertificates: true)) { fleet in
      let known = fleet.directory + "/known/known_hosts"
      var environment = fleet.environment
      environment["SIXTY_KNOWN_HOSTS"] = known
      let playbook = fleet.directory + "/tofu.yml"
      try
        "name: tofu\nhosts: all\npolicy: {host_key_checking: accept-new}\ntasks:\n  - name: t\n    command: [true]\n"
        .write(toFile: playbook, atomically: true, encoding: .utf8)
      let inventory = try fleet.writeInventory()
      let first = try SixtyBinary.run(
        ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress", "-v"],
        environment: environment)
      #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
      #expect(first.stderr.contains("sixty: ssh client: built-in"), "\(first.stderr)")
      let recorded = try String(contentsOfFile: known, encoding: .utf8)
      for host in fleet.hosts {
        let key = try String(contentsOfFile: host.directory + "/host_key.pub", encoding: .utf8)
          .split(separator: " ").prefix(2).joined(separator: " ")
        #expect(recorded.contains("[\(host.address)]:\(host.port) \(key)"), "\(recorded)")
      }
      // OpenSSH reads what the built-in client wrote.
      let a = fleet.hosts[0]
      let check = try runProgram("/usr/bin/ssh-keygen", ["-F", "[\(a.address)]:\(a.port)", "-f", known])
      #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
      // The first host's key changes (another key recorded for it): it is refused, the other runs.
      let other = fleet.directory + "/other_key"
      _ = try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
      let otherKey = try String(contentsOfFile: other + ".pub", encoding: .utf8).split(separator: " ").prefix(
        2
      )
      .joined(separator: " ")
      let lines = recorded.split(separator: "\n").map { line -> String in
        line.hasPrefix("[\(a.address)]:\(a.port) ") ? "[\(a.address)]:\(a.port) \(otherKey)" : String(line)
      }
      try (lines.joined(separator: "\n") + "\n").write(toFile: known, atomically: true, encoding: .utf8)
      let report = fleet.directory + "/tofu.json"
      let second = try SixtyBinary.run(
        [
          "run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress", "--report", report,
        ],
        environment: environment)
      #expect(second.status != 0)
      let hosts = try hosts(report)
      let refused = try #require(hosts[a.name])
      #expect(refused["status"] as? String == "unreachable", "\(refused)")
      #expect(
        (refused["message"] as? String)?.contains("is not the one recorded in \(known) on first use") == true,
        "\(refused)")
      #expect(hosts[fleet.hosts[1].name]?["status"] as? String == "ok")
    }
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func hostsWithSSHOptionsAndRunsWithOptionsGoToOpenSSH() throws {
    try withLocalFleet(LocalFleet(count: 2, certificates: true, preferCertificates: true)) { fleet in
      let playbook = fleet.directory + "/mixed.yml"
      try
        "name: mixed\nhosts: all\npolicy: {host_key_checking: off}\ntasks:\n  - name: t\n    command: [true]\n"
        .write(toFile: playbook, atomically: true, encoding: .utf8)
      // The second host has an ssh option of its own: OpenSSH logs in there.
      var inventory = try String(contentsOfFile: try fleet.writeInventory(), encoding: .utf8)
      let second = fleet.hosts[1]
      inventory = inventory.replacingOccurrences(
        of: "  \(second.name):\n", with: "  \(second.name):\n    ssh_options: [\"Compression=no\"]\n")
      let path = fleet.directory + "/mixed-inventory.yml"
      try inventory.write(toFile: path, atomically: true, encoding: .utf8)
      let run = try SixtyBinary.run(
        ["run", playbook, "-i", path, "--endpoint", fleet.endpoint, "--no-progress", "-vv"],
        environment: fleet.environment)
      #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
      #expect(
        run.stderr.contains(
          "(built-in ssh client) root@\(fleet.hosts[0].address) port \(fleet.hosts[0].port)")
          || run.stderr.contains("(built-in ssh client) \(fleet.user)@\(fleet.hosts[0].address)"),
        "\(run.stderr)")
      #expect(run.stderr.contains("Compression=no"), "OpenSSH for the host with options: \(run.stderr)")
      // Operator options (-o) keep the whole run on OpenSSH, and -v says why.
      let withOption = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--no-progress",
          "-v",
          "-o", "Compression=no",
        ], environment: fleet.environment)
      #expect(withOption.status == 0, "\(withOption.stderr)")
      #expect(
        withOption.stderr.contains("sixty: ssh client: OpenSSH, because ssh options were given"),
        "\(withOption.stderr)")
    }
  }

  /// A command's own exit 255 is its status, a connection that drops under a task is pushed for
  /// and reconnected once, and a host where nothing listens fails with the reason.
  @Test(.enabled(if: canRun, "needs root and sshd"))
  func aDroppedConnectionReconnectsAndA255IsTheCommands() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let marker = fleet.directory + "/dropped"
      let playbook = fleet.directory + "/drops.yml"
      try """
      name: drops
      hosts: all
      policy: {host_key_checking: off}
      tasks:
        - name: only
          shell: |
            case "{{ host.name }}" in
              web-1) echo "out web-1"; echo "err web-1" >&2; exit 255 ;;
              web-2) if [ ! -f \(marker) ]; then touch \(marker); p=$PPID; while ! grep -q '^sshd' /proc/$p/comm; do p=$(cut -d' ' -f4 /proc/$p/stat); done; kill -9 $p; sleep 5; fi; echo "out web-2" ;;
              *) echo "out {{ host.name }}" ;;
            esac
      """.write(toFile: playbook, atomically: true, encoding: .utf8)
      let inventory = fleet.directory + "/inventory-9.yml"
      try
        (String(contentsOfFile: try fleet.writeInventory(), encoding: .utf8)
        + "  web-9:\n    address: 127.0.0.1\n    port: \(LocalProcess.freePort())\n    user: \(fleet.user)\n    instance_id: \(fleet.hosts[0].instanceID)\n")
        .write(toFile: inventory, atomically: true, encoding: .utf8)
      let report = fleet.directory + "/drops.json"
      let run = try SixtyBinary.run(
        ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "--report", report, "-v"],
        environment: fleet.environment)
      #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
      #expect(run.stderr.contains("sixty: ssh client: built-in"), "\(run.stderr)")
      let hosts = try hosts(report)
      let web1 = hosts["web-1"]?["tasks"] as? [[String: Any]] ?? []
      #expect(hosts["web-1"]?["status"] as? String == "failed")
      #expect(hosts["web-1"]?["reconnects"] as? Int == 0, "a command's own 255 is not a lost connection")
      #expect(web1.first?["exit_status"] as? Int == 255)
      #expect(
        web1.first?["stdout"] as? String == "out web-1\n" && web1.first?["stderr"] as? String == "err web-1\n"
      )
      #expect(hosts["web-2"]?["status"] as? String == "ok", "\(hosts["web-2"] ?? [:])\n\(run.stdout)")
      #expect(hosts["web-2"]?["reconnects"] as? Int == 1)
      #expect((hosts["web-2"]?["pushes"] as? [String])?.count == 2)
      #expect((hosts["web-2"]?["tasks"] as? [[String: Any]])?.first?["stdout"] as? String == "out web-2\n")
      #expect(hosts["web-9"]?["status"] as? String == "unreachable")
      #expect(
        (hosts["web-9"]?["message"] as? String)?.hasPrefix("cannot connect to \(fleet.user)@127.0.0.1:")
          == true
          && (hosts["web-9"]?["message"] as? String)?.contains("Connection refused") == true,
        "\(hosts["web-9"] ?? [:])")
    }
  }
}
