import Foundation
import Testing

/// The run history against the local fleet: `sixty runs list/show/rerun`, crash marking and host
/// locks between two real runs.
@Suite(.serialized) struct HistoryEndToEndTests {
  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func json(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
  }

  func runs(_ fleet: LocalFleet) throws -> [[String: Any]] {
    let list = try SixtyBinary.run(["runs", "list", "--format", "json"], environment: fleet.environment)
    #expect(list.status == 0, "\(list.stderr)")
    return try #require(try json(list.stdout) as? [[String: Any]])
  }

  func show(_ fleet: LocalFleet, _ id: Int) throws -> [String: Any] {
    let shown = try SixtyBinary.run(
      ["runs", "show", String(id), "--format", "json"], environment: fleet.environment)
    #expect(shown.status == 0, "\(shown.stderr)")
    return try #require(try json(shown.stdout) as? [String: Any])
  }

  func hostStatuses(_ run: [String: Any]) -> [String: String] {
    var out: [String: String] = [:]
    for host in run["hosts"] as? [[String: Any]] ?? [] {
      out[host["host"] as? String ?? "?"] = host["status"] as? String
    }
    return out
  }

  /// Processes whose command line mentions `text` (read from /proc).
  func processes(mentioning text: String) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry in
      guard let pid = Int32(entry), pid != getpid(),
        let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
      else { return nil }
      return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(text) ? pid : nil
    }
  }

  func waitUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if try condition() { return true }
      Thread.sleep(forTimeInterval: 0.1)
    }
    return try condition()
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func runsAreRecordedShownAndRerunOnExactlyTheFailedHosts() throws {
    try withLocalFleet(LocalFleet(count: 5)) { fleet in
      let playbook = try write(
        """
        name: patch
        hosts: all
        tasks:
          - name: check
            shell: 'test -n "{{ token }}"; for b in {{ bad }}; do if [ "$b" = "{{ host.name }}" ]; then echo "refusing on $b" >&2; exit 3; fi; done; echo fine'
        """, fleet.directory + "/patch.yml")
      let inventory = try fleet.writeInventory()
      let secret = "tok-\(UUID().uuidString)"
      let first = try SixtyBinary.run(
        [
          "run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "-e", "bad=web-2 web-4", "-e",
          "token=\(secret)",
        ],
        environment: fleet.environment)
      #expect(first.status == 1, "\(first.stdout)\(first.stderr)")
      #expect(first.stdout.contains("run 1 recorded in \(fleet.historyPath)"))

      let listed = try runs(fleet)
      #expect(listed.count == 1)
      #expect(listed.first?["status"] as? String == "failed")
      #expect(listed.first?["hosts_failed"] as? Int == 2)
      #expect(listed.first?["hosts_ok"] as? Int == 3)
      #expect(listed.first?["trigger"] as? String == "manual")
      #expect((listed.first?["extra_var_names"] as? [String]).map(Set.init) == ["bad", "token"])
      let shown = try show(fleet, 1)
      #expect(
        hostStatuses(shown) == [
          "web-1": "ok", "web-2": "failed", "web-3": "ok", "web-4": "failed", "web-5": "ok",
        ])
      for host in shown["hosts"] as? [[String: Any]] ?? [] {
        let pushes = host["pushes"] as? [String] ?? []
        #expect(pushes.count == 1)
        #expect(host["authenticated"] is String)
        #expect(host["push_to_auth_ms"] is Int)
      }
      let text = try SixtyBinary.run(
        ["runs", "show", "1", "--host", "web-2"], environment: fleet.environment)
      #expect(text.stdout.contains("web-2 | check | failed (exit 3)"), "\(text.stdout)")
      #expect(text.stdout.contains("! refusing on web-2"), "\(text.stdout)")
      let human = try SixtyBinary.run(["runs", "list"], environment: fleet.environment)
      let row = human.stdout.split(separator: "\n").last.map(String.init) ?? ""
      #expect(row.hasPrefix("1 ") && row.contains(" failed ") && row.contains(" 3/2/5 "), "\(human.stdout)")

      // Values of extra variables are never stored, so a rerun needs them again.
      let missing = try SixtyBinary.run(
        ["runs", "rerun", "1", "--failed", "--endpoint", fleet.endpoint], environment: fleet.environment)
      #expect(missing.status == 2)
      #expect(missing.stderr.contains("-e bad"), "\(missing.stderr)")
      let rerun = try SixtyBinary.run(
        [
          "runs", "rerun", "1", "--failed", "--endpoint", fleet.endpoint, "-e", "bad=none", "-e",
          "token=\(secret)",
        ],
        environment: fleet.environment)
      #expect(rerun.status == 0, "\(rerun.stdout)\(rerun.stderr)")
      #expect(rerun.stdout.contains("rerunning run 1 on its 2 failed hosts: web-2, web-4"))
      let second = try show(fleet, 2)
      #expect(hostStatuses(second) == ["web-2": "ok", "web-4": "ok"])
      #expect(second["rerun_of"] as? Int == 1)
      #expect(second["trigger"] as? String == "rerun")
      #expect(second["status"] as? String == "succeeded")
      // Nothing failed in run 2.
      let nothing = try SixtyBinary.run(
        ["runs", "rerun", "2", "--failed", "--endpoint", fleet.endpoint], environment: fleet.environment)
      #expect(nothing.status == 0)
      #expect(nothing.stdout.contains("run 2 has no failed hosts"))

      // The secret value is nowhere in the history files.
      for suffix in ["", "-wal", "-shm"] {
        if let data = FileManager.default.contents(atPath: fleet.historyPath + suffix) {
          #expect(
            data.range(of: Data(secret.utf8)) == nil, "the history\(suffix) holds an extra variable's value")
        }
      }
      let since = try SixtyBinary.run(
        ["runs", "list", "--since", "1h", "--format", "json"], environment: fleet.environment)
      #expect((try json(since.stdout) as? [Any])?.count == 2)
      let future = try SixtyBinary.run(
        ["runs", "list", "--since", "2099-01-01T00:00:00Z", "--format", "json"],
        environment: fleet.environment)
      #expect((try json(future.stdout) as? [Any])?.isEmpty == true)
      let unknown = try SixtyBinary.run(["runs", "show", "99"], environment: fleet.environment)
      #expect(unknown.status == 2)
      #expect(unknown.stderr.contains("there is no run 99 in \(fleet.historyPath)"))
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func anExecRunIsRecordedWithItsCommandAndRerunOnItsFailedHosts() throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let inventory = try fleet.writeInventory()
      // web-2 fails until the marker file exists (sshd runs as root here, so the file is local).
      let marker = fleet.directory + "/web-2-fixed"
      let first = try SixtyBinary.run(
        [
          "exec", "all", "-i", inventory, "--endpoint", fleet.endpoint, "--",
          "sh", "-c", "{ [ {{ host.name }} != web-2 ] || [ -e \(marker) ]; } && echo done on {{ host.name }}",
        ], environment: fleet.environment)
      #expect(first.status == 1, "\(first.stdout)\(first.stderr)")
      let recorded = try show(fleet, 1)
      #expect(recorded["playbook"] as? String == "sixty exec")
      #expect((recorded["command"] as? [String])?.first == "sh", "\(recorded)")
      #expect(recorded["selector"] as? String == "all")
      #expect(hostStatuses(recorded) == ["web-1": "ok", "web-2": "failed", "web-3": "ok"])
      let text = try SixtyBinary.run(["runs", "show", "1"], environment: fleet.environment)
      #expect(
        text.stdout.contains("  command    'sh' '-c' '{ [ {{ host.name }} != web-2 ]"), "\(text.stdout)")

      #expect(FileManager.default.createFile(atPath: marker, contents: nil))
      let rerun = try SixtyBinary.run(
        ["runs", "rerun", "1", "--failed", "--endpoint", fleet.endpoint], environment: fleet.environment)
      #expect(rerun.status == 0, "\(rerun.stdout)\(rerun.stderr)")
      #expect(rerun.stdout.contains("rerunning run 1 on its 1 failed host: web-2"), "\(rerun.stdout)")
      #expect(rerun.stdout.contains("web-2 | done on web-2"), "\(rerun.stdout)")
      #expect(!rerun.stdout.contains("web-1 |"), "\(rerun.stdout)")
      let second = try show(fleet, 2)
      #expect(hostStatuses(second) == ["web-2": "ok"])
      #expect(second["rerun_of"] as? Int == 1)
      #expect(second["command"] as? [String] == recorded["command"] as? [String])
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aPlaybookIsRecordedByItsAbsolutePathAndAChangeIsNamedOnRerun() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let work = fleet.directory + "/work"
      try FileManager.default.createDirectory(atPath: work + "/sub", withIntermediateDirectories: true)
      let playbook = try write(
        "name: hi\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n", work + "/hi.yml")
      let inventory = try fleet.writeInventory()
      let first = try SixtyBinary.run(
        ["run", "sub/../hi.yml", "-i", inventory, "--endpoint", fleet.endpoint],
        in: URL(fileURLWithPath: work), environment: fleet.environment)
      #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
      #expect(try show(fleet, 1)["playbook"] as? String == playbook)

      try "name: hi\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, changed]\n".write(
        toFile: playbook, atomically: true, encoding: .utf8)
      // From another directory: the recorded path still finds the playbook.
      let rerun = try SixtyBinary.run(
        ["runs", "rerun", "1", "--endpoint", fleet.endpoint], in: URL(fileURLWithPath: "/"),
        environment: fleet.environment)
      #expect(rerun.status == 0, "\(rerun.stdout)\(rerun.stderr)")
      #expect(rerun.stderr.contains("the playbook \(playbook) changed since run 1"), "\(rerun.stderr)")
      #expect(rerun.stdout.contains("web-1 | changed"), "\(rerun.stdout)")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aKilledRunIsMarkedInterruptedAndItsHostsFreed() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      // OpenSSH's client, whose processes (naming the key directory) tell that the run connected.
      let slow = try write(
        """
        name: slow
        hosts: all
        policy: {ssh_client: openssh}
        tasks:
          - name: wait
            command: [sleep, "30"]
        """, fleet.directory + "/slow.yml")
      let inventory = try fleet.writeInventory()
      let keyDir = fleet.directory + "/keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      var env = fleet.environment
      env["SIXTY_KEY_DIR"] = keyDir
      let run = try LocalProcess(
        SixtyBinary.path, ["run", slow, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"],
        environment: env, logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      #expect(waitUntil(20) { run.log.contains("run 1 recorded") && !processes(mentioning: keyDir).isEmpty })
      Thread.sleep(forTimeInterval: 1.5)
      #expect(try runs(fleet).first?["status"] as? String == "running")
      kill(run.pid, SIGKILL)
      #expect(waitUntil(5) { !run.isRunning })
      // What the killed run left behind (its ssh connections) is stopped by pid.
      for pid in processes(mentioning: keyDir) { kill(pid, SIGKILL) }

      let listed = try runs(fleet)
      #expect(listed.first?["status"] as? String == "interrupted", "\(listed)")
      #expect((listed.first?["message"] as? String)?.contains("stopped without finishing") == true)
      // Its host locks are gone: a run whose policy refuses busy hosts goes ahead at once.
      let policy = try write("host_lock: refuse\n", fleet.directory + "/refuse.yml")
      let quick = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      // The killed run's key directory is still there until the next run wipes it.
      let left = try FileManager.default.contentsOfDirectory(atPath: keyDir)
      #expect(left.count == 1 && left[0].hasPrefix("sixty-run-"), "\(left)")
      let after = try SixtyBinary.run(
        ["run", quick, "-i", inventory, "--policy", policy, "--endpoint", fleet.endpoint], environment: env)
      #expect(after.status == 0, "\(after.stdout)\(after.stderr)")
      #expect(
        after.stdout.contains("sixty: wiped 1 key directory left by a run that was killed"), "\(after.stdout)"
      )
      #expect(try FileManager.default.contentsOfDirectory(atPath: keyDir).isEmpty)
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aSecondRunOnTheSameHostWaitsOrIsRefused() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let inventory = try fleet.writeInventory()
      let slow = try write(
        "name: slow\nhosts: web-1\ntasks:\n  - name: wait\n    command: [sleep, \"4\"]\n",
        fleet.directory + "/slow.yml")
      let quick = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      let other = try write(
        "name: other\nhosts: web-2\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/other.yml")
      let refuse = try write("host_lock: refuse\n", fleet.directory + "/refuse.yml")
      let first = try LocalProcess(
        SixtyBinary.path, ["run", slow, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"],
        environment: fleet.environment, logPath: fleet.directory + "/first.log")
      defer { first.stop() }
      #expect(waitUntil(15) { first.log.contains("run 1 recorded") })
      Thread.sleep(forTimeInterval: 0.5)

      // Another host is free.
      let free = try SixtyBinary.run(
        ["run", other, "-i", inventory, "--policy", refuse, "--endpoint", fleet.endpoint],
        environment: fleet.environment)
      #expect(free.status == 0, "\(free.stdout)\(free.stderr)")
      // web-1 is busy: refused at once.
      let refused = try SixtyBinary.run(
        ["run", quick, "-i", inventory, "--policy", refuse, "--endpoint", fleet.endpoint],
        environment: fleet.environment)
      #expect(refused.status == 3, "\(refused.stdout)\(refused.stderr)")
      #expect(
        refused.stderr.contains("the host web-1 is busy: run 1 (manual, started by"), "\(refused.stderr)")
      #expect(refused.stderr.contains("host_lock: refuse"))
      // By default the second run waits for the first, then runs.
      let started = Date()
      let waited = try SixtyBinary.run(
        ["run", quick, "-i", inventory, "--endpoint", fleet.endpoint], environment: fleet.environment)
      #expect(waited.status == 0, "\(waited.stdout)\(waited.stderr)")
      #expect(waited.stdout.contains("waiting up to 10m for host web-1, which run 1"), "\(waited.stdout)")
      #expect(!first.isRunning || Date().timeIntervalSince(started) > 1)
      #expect(waitUntil(10) { !first.isRunning })
      let statuses = try runs(fleet).map { ($0["id"] as? Int ?? 0, $0["status"] as? String ?? "") }.sorted {
        $0.0 < $1.0
      }
      #expect(statuses.map(\.1) == ["succeeded", "succeeded", "refused", "succeeded"], "\(statuses)")
      // The waiting run's hosts started only after the first run finished.
      let one = try show(fleet, 1)
      let four = try show(fleet, 4)
      let iso = ISO8601DateFormatter()
      iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
      let firstEnd = try #require((one["finished"] as? String).flatMap { iso.date(from: $0) })
      let web1 = (four["hosts"] as? [[String: Any]] ?? []).first { $0["host"] as? String == "web-1" }
      let web1Start = try #require((web1?["started"] as? String).flatMap { iso.date(from: $0) })
      #expect(web1Start >= firstEnd)
    }
  }
}
