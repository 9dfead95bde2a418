import Foundation
import Testing

/// Two jobs daemons on one PostgreSQL history: each fire runs exactly once, and when the daemon
/// running a job is SIGKILLed its run stops and is marked interrupted while the other daemon goes
/// on firing the job.
@Suite(.serialized) struct SharedJobsEndToEndTests {
  static var canRun: Bool { LocalFleet.canRun && TestPostgres.binDirectory != nil }

  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func waitUntil(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if try condition() { return true }
      Thread.sleep(forTimeInterval: 0.2)
    }
    return try condition()
  }

  func runs(_ env: [String: String]) throws -> [[String: Any]] {
    let list = try SixtyBinary.run(["runs", "list", "--limit", "500", "--format", "json"], environment: env)
    #expect(list.status == 0, "\(list.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
  }

  @Test(.enabled(if: canRun, "needs root, sshd and PostgreSQL (make test installs them)"))
  func twoDaemonsRunEachFireOnceAndOneTakesOverWhenTheOtherDies() throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("jobs")
    try withLocalFleet(LocalFleet(count: 4)) { fleet in
      let dir = fleet.directory
      let inventory = try fleet.writeInventory()
      for (name, host) in [("a", "web-1"), ("b", "web-2"), ("c", "web-3")] {
        _ = try write(
          "name: \(name)\nhosts: \(host)\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
          dir + "/\(name).yml")
      }
      _ = try write(
        "name: slow\nhosts: web-4\ntasks:\n  - name: wait\n    command: [sleep, \"30\"]\n", dir + "/slow.yml")
      let jobs = try write(
        """
        jobs:
          a: {playbook: a.yml, inventory: \(inventory), schedule: rate(2 seconds), overlap: skip, catch_up: none}
          b: {playbook: b.yml, inventory: \(inventory), schedule: rate(3 seconds), overlap: skip, catch_up: none}
          c: {playbook: c.yml, inventory: \(inventory), schedule: rate(5 seconds), overlap: skip, catch_up: none}
          slow: {playbook: slow.yml, inventory: \(inventory), schedule: rate(4 seconds), overlap: skip, catch_up: none}

        """, dir + "/jobs.yml")
      var env = fleet.environment
      env["SIXTY_TEST_SECOND_RATES"] = "1"
      env["XDG_STATE_HOME"] = dir + "/state"
      env["AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT"] = fleet.endpoint
      env["SIXTY_HISTORY"] = url
      env["PGPASSWORD"] = postgres.password
      env["SIXTY_RUN_STALE_AFTER"] = "3"
      // The history is a database: files kept beside it go to the fleet, not the state directory.
      env["SIXTY_KNOWN_HOSTS"] = fleet.directory + "/known_hosts"
      let daemons = try (1...2).map { index in
        try LocalProcess(
          SixtyBinary.path, ["jobs", "daemon", "--jobs", jobs], environment: env,
          logPath: dir + "/daemon-\(index).log")
      }
      defer { for daemon in daemons { daemon.stop() } }
      Thread.sleep(forTimeInterval: 16)

      // Each fire of each job was handled by exactly one daemon.
      let all = try runs(env)
      var fires: [String: Int] = [:]
      for run in all {
        let key = "\(run["job"] as? String ?? "?") \(run["scheduled_for"] as? String ?? "?")"
        fires[key, default: 0] += 1
      }
      #expect(fires.values.allSatisfy { $0 == 1 }, "\(fires.filter { $0.value > 1 })")
      for job in ["a", "b", "c"] {
        let count = all.filter { $0["job"] as? String == job && $0["status"] as? String == "succeeded" }.count
        #expect(count >= 2, "job \(job): \(count) runs: \(all)")
      }
      let starts = daemons.map { $0.log.components(separatedBy: "msg=\"run started\"").count - 1 }
      #expect(starts.reduce(0, +) >= 8, "\(starts)")

      // The daemon running `slow` dies; its run stops and is marked interrupted, and the other
      // daemon fires `slow` again within the lease (30 s).
      // The daemon whose child is the running `slow` run.
      func parent(of pid: Int) -> pid_t? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
      }
      var holderPID: pid_t?
      _ = try waitUntil(10) {
        let slow = try runs(env).first {
          $0["job"] as? String == "slow" && $0["status"] as? String == "running"
        }
        holderPID = (slow?["pid"] as? Int).flatMap(parent(of:))
        return holderPID.map { pid in daemons.contains { $0.pid == pid } } ?? false
      }
      let holder = try #require(daemons.first { $0.pid == holderPID })
      let survivor = daemons.first { $0 !== holder }!
      kill(holder.pid, SIGKILL)
      let killedAt = Date()
      #expect(waitUntil(5) { !holder.isRunning })
      #expect(
        try waitUntil(20) {
          try runs(env).contains {
            $0["job"] as? String == "slow" && $0["status"] as? String == "interrupted"
              && ($0["message"] as? String)?.contains("jobs daemon that started it stopped") == true
          }
        },
        "no interrupted run of slow: \((try? runs(env))?.filter { $0["job"] as? String == "slow" && $0["status"] as? String != "skipped" } ?? [])"
      )
      func slowStarts(_ log: String) -> Int {
        log.split(separator: "\n").filter { $0.contains("msg=\"run started\"") && $0.contains("job=slow") }
          .count
      }
      let before = slowStarts(survivor.log)
      #expect(waitUntil(35) { slowStarts(survivor.log) > before }, "\(survivor.log)")
      #expect(Date().timeIntervalSince(killedAt) < 55)
      // Logs and known hosts never land under a folder named after the database URL.
      #expect(!FileManager.default.fileExists(atPath: SixtyBinary.packageRoot.path + "/postgresql:"))
      #expect(FileManager.default.fileExists(atPath: dir + "/state/sixty/logs/slow"))
    }
  }
}
