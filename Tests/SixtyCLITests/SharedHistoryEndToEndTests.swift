import Foundation
import SixtyHistory
import Testing

/// The run history on a real PostgreSQL server: the same records as the SQLite file, host locks
/// that exclude runners on different machines (a UTS namespace gives a runner another host name),
/// and a dead runner's locks freed once its heartbeat lapses.
@Suite(.serialized) struct SharedHistoryEndToEndTests {
  static var canRun: Bool {
    LocalFleet.canRun && TestPostgres.binDirectory != nil && LocalProcess.which("unshare") != nil
  }

  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func waitUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if try condition() { return true }
      Thread.sleep(forTimeInterval: 0.1)
    }
    return try condition()
  }

  func processes(mentioning text: String) -> [pid_t] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry in
      guard let pid = Int32(entry), pid != getpid(),
        let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
      else { return nil }
      return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(text) ? pid : nil
    }
  }

  @Test(.enabled(if: canRun, "needs root, sshd, unshare and PostgreSQL (make test installs them)"))
  func runnersOnTwoMachinesExcludeEachOtherAndADeadRunnersLocksLapse() throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("locks")
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let inventory = try fleet.writeInventory()
      var env = fleet.environment
      env["SIXTY_HISTORY"] = url
      env["PGPASSWORD"] = postgres.password
      env["SIXTY_RUN_STALE_AFTER"] = "3"
      // The history is a database: files kept beside it go to the fleet, not the state directory.
      env["SIXTY_KNOWN_HOSTS"] = fleet.directory + "/known_hosts"
      let slow = try write(
        "name: slow\nhosts: web-1:web-2\npolicy: {ssh_client: openssh}\ntasks:\n  - name: wait\n    command: [sleep, \"60\"]\n",
        fleet.directory + "/slow.yml")
      let quick = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      let third = try write(
        "name: third\nhosts: web-3\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/third.yml")
      let refuse = try write("host_lock: refuse\n", fleet.directory + "/refuse.yml")
      let keyDir = fleet.directory + "/keys-a"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      var envA = env
      envA["SIXTY_KEY_DIR"] = keyDir
      // Runner A on "machine-a": its own host name, so its process id means nothing here.
      let quoted =
        ([SixtyBinary.path, "run", slow, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"])
        .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
      let runnerA = try LocalProcess(
        "/usr/bin/unshare", ["--uts", "/bin/sh", "-c", "hostname machine-a && exec \(quoted)"],
        environment: envA,
        logPath: fleet.directory + "/a.log")
      defer { runnerA.stop() }
      #expect(
        waitUntil(30) { runnerA.log.contains("run 1 recorded") && !processes(mentioning: keyDir).isEmpty },
        "\(runnerA.log)")
      Thread.sleep(forTimeInterval: 0.5)
      // Runner B (this machine) is refused web-1 and web-2, but gets web-3.
      let refused = try SixtyBinary.run(
        ["run", quick, "-i", inventory, "--policy", refuse, "--endpoint", fleet.endpoint], environment: env)
      #expect(refused.status == 3, "\(refused.stdout)\(refused.stderr)")
      #expect(refused.stderr.contains("is busy: run 1 (manual, started by"), "\(refused.stderr)")
      let free = try SixtyBinary.run(
        ["run", third, "-i", inventory, "--policy", refuse, "--endpoint", fleet.endpoint], environment: env)
      #expect(free.status == 0, "\(free.stdout)\(free.stderr)")
      // Longer than the stale period: A's heartbeats keep its locks.
      Thread.sleep(forTimeInterval: 4)
      let still = try SixtyBinary.run(
        ["run", quick, "-i", inventory, "--policy", refuse, "--endpoint", fleet.endpoint], environment: env)
      #expect(still.status == 3, "\(still.stdout)\(still.stderr)")
      // Both machines' runs are listed from either.
      let listed = try SixtyBinary.run(["runs", "list", "--format", "json"], environment: env)
      let runs = try #require(
        try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
      #expect(runs.count == 4, "\(listed.stdout)\(listed.stderr)")
      #expect(runs.last?["status"] as? String == "running")

      // A dies without a word; B waits for its heartbeat to lapse, then runs.
      kill(runnerA.pid, SIGKILL)
      #expect(waitUntil(5) { !runnerA.isRunning })
      for pid in processes(mentioning: keyDir) { kill(pid, SIGKILL) }
      let started = Date()
      let waited = try SixtyBinary.run(
        ["run", quick, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"], environment: env)
      #expect(waited.status == 0, "\(waited.stdout)\(waited.stderr)")
      #expect(Date().timeIntervalSince(started) < 20)
      let shown = try SixtyBinary.run(["runs", "show", "1", "--format", "json"], environment: env)
      let first = try #require(
        try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
      #expect(first["status"] as? String == "interrupted", "\(shown.stdout)")
      #expect(
        (first["message"] as? String)?.contains("stopped sending heartbeats") == true, "\(shown.stdout)")
      #expect(!shown.stdout.contains(postgres.password))
    }
  }

  /// The same calls on a SQLite file and on PostgreSQL read back the same.
  @Test(.enabled(if: TestPostgres.binDirectory != nil, "needs PostgreSQL (make test installs it)"))
  func postgresKeepsWhatSQLiteKeeps() throws {
    let postgres = try TestPostgres.shared()
    setenv("PGPASSWORD", postgres.password, 1)
    let url = try postgres.database("same")
    let file = NSTemporaryDirectory() + "/sixty-same-\(UUID().uuidString).sqlite"
    defer { try? FileManager.default.removeItem(atPath: file) }
    let stores = [try History(path: file), try History(path: url)]
    #expect(stores[1].path.hasPrefix("postgresql://sixty@127.0.0.1:"))
    #expect(stores[1].isShared && !stores[0].isShared)
    let t0 = Date(timeIntervalSince1970: 1_800_000_000.25)
    var seen: [String] = []
    for history in stores {
      let id = try history.begin(
        NewRun(
          startedAt: t0, playbook: "/p/site.yml", playbookSHA256: "abc", inventory: "/p/inv.yml", policy: nil,
          limit: "role=web:!web-2", extraVarNames: ["a", "b"], job: "nightly", trigger: .schedule,
          scheduledFor: t0, hostsTotal: 2, adHocCommand: nil))
      try history.record(
        runID: id,
        play: PlayRecord(position: 0, name: "patch", outcome: .completed, keyTTL: 60, concurrency: 5))
      let task = TaskRecord(
        name: "uptime", status: .ok, exitStatus: 0, attempts: 1, startedAt: t0,
        finishedAt: t0.addingTimeInterval(1),
        stdoutTail: "up 3 days\n", stderrTail: "")
      try history.record(
        runID: id,
        hosts: [
          HostRecord(
            play: "patch", host: "web-1", address: "10.0.0.1", user: "ops", status: .ok, pushes: [t0],
            authenticatedAt: t0, pushToAuthMilliseconds: 12, startedAt: t0, finishedAt: t0, tasks: [task]),
          HostRecord(
            play: "patch", host: "web-3", address: "10.0.0.3", user: "ops", status: .failed,
            message: "exit 1",
            tasks: [TaskRecord(name: "uptime", status: .failed, reason: "exit 1", exitStatus: 1)]),
        ])
      try history.setKeyFingerprint(runID: id, "SHA256:xyz")
      let lockA = HostLockKey(name: "web-1", address: "10.0.0.1", port: 22)
      #expect(try history.tryLock(runID: id, hosts: [lockA]) == nil)
      let other = try history.begin(
        NewRun(startedAt: t0, playbook: "/p/other.yml", playbookSHA256: "def", inventory: nil, policy: nil))
      #expect(try history.tryLock(runID: other, hosts: [lockA])?.runID == id)
      try history.finish(
        id: id, status: .failed, exitCode: 1, message: "1 host failed", at: t0.addingTimeInterval(5))
      #expect(try history.tryLock(runID: other, hosts: [lockA]) == nil)
      try history.finish(
        id: other, status: .succeeded, exitCode: 0, message: nil, at: t0.addingTimeInterval(6))
      try history.recordNotification(
        NotificationRecord(
          runID: id, job: "nightly", kind: .webhook, target: "https://hooks.example/x", outcome: .sent,
          attempts: 1,
          error: nil, at: t0))
      try history.setLastFire(job: "nightly", at: t0)
      try history.setLastFire(job: "nightly", at: t0.addingTimeInterval(-60))
      var text = ""
      for run in try history.runs(limit: 10) {
        text +=
          "\(run.id) \(run.status) \(run.exitCode ?? -1) \(run.message ?? "-") \(run.playbook) \(run.limit ?? "-") "
        text +=
          "\(run.extraVarNames) \(run.job ?? "-") \(run.trigger) \(run.hostsTotal) \(run.hostsOK) \(run.hostsFailed) "
        text += "\(run.keyFingerprint ?? "-") \(run.startedAt.timeIntervalSince1970) \(run.duration ?? -1) "
        text += "\(run.scheduledFor?.timeIntervalSince1970 ?? -1)\n"
      }
      for host in try history.hosts(runID: id) {
        text +=
          "\(host.play) \(host.host) \(host.status) \(host.message ?? "-") \(host.pushes) \(host.pushToAuthMilliseconds ?? -1) "
        for task in host.tasks {
          text +=
            "[\(task.name) \(task.status) \(task.exitStatus ?? -1) \(task.stdoutTail ?? "-") \(task.reason ?? "-")]"
        }
        text += "\n"
      }
      text += "\(try history.hosts(runID: id, host: "web-3").map(\.host))\n"
      text +=
        "\(try history.plays(runID: id).map { "\($0.name) \($0.outcome) \($0.keyTTL) \($0.concurrency)" })\n"
      text += "\(try history.notifications(runID: id).map { "\($0.kind) \($0.target) \($0.outcome)" })\n"
      text +=
        "\(try history.lastFire(job: "nightly")?.timeIntervalSince1970 ?? -1) \(try history.locks().count)\n"
      text += "\(try history.runs(job: "nightly").count) \(try history.run(id: 99)?.id ?? -1)\n"
      seen.append(text)
    }
    #expect(seen[0] == seen[1])
    #expect(seen[0].contains("web-3 failed exit 1"), "\(seen[0])")
  }
}
