import Foundation
import Testing

/// `sixty jobs` against the local fleet: the daemon fires real runs on schedule, skips overlaps,
/// catches up after a restart, reloads on SIGHUP, notifies, and stops gracefully.
///
/// Schedules here use `rate(N seconds)`, a unit that exists only for tests and is enabled by
/// SIXTY_TEST_SECOND_RATES=1 (AWS and Sixty otherwise accept minutes, hours and days).
@Suite(.serialized) struct JobsEndToEndTests {
  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if condition() { return true }
      Thread.sleep(forTimeInterval: 0.1)
    }
    return condition()
  }

  func runs(_ env: [String: String]) throws -> [[String: Any]] {
    let list = try SixtyBinary.run(["runs", "list", "--limit", "500", "--format", "json"], environment: env)
    #expect(list.status == 0, "\(list.stderr)")
    return try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
  }

  func time(_ run: [String: Any], _ key: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return (run[key] as? String).flatMap { formatter.date(from: $0) }
  }

  /// A webhook receiver on loopback: answers the first POST with 500, later ones with 200, and
  /// keeps every body in a file.
  func hookServer(_ directory: String) throws -> (LocalProcess, Int) {
    let port = LocalProcess.freePort()
    let script = """
      import http.server, os
      count = 0
      class H(http.server.BaseHTTPRequestHandler):
          def do_POST(self):
              global count
              count += 1
              body = self.rfile.read(int(self.headers['Content-Length']))
              open(os.path.join('\(directory)', 'hook-%d.json' % count), 'wb').write(body)
              self.send_response(500 if count == 1 else 200)
              self.send_header('Content-Length', '0')
              self.end_headers()
          def log_message(self, *a):
              pass
      http.server.HTTPServer(('127.0.0.1', \(port)), H).serve_forever()
      """
    let server = try LocalProcess(
      LocalProcess.which("python3")!, ["-c", script], logPath: directory + "/hook-server.log")
    return (server, port)
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func daemonFiresOnTimeSkipsOverlapsCatchesUpReloadsNotifiesAndStops() throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let dir = fleet.directory
      try FileManager.default.createDirectory(atPath: dir + "/hooks", withIntermediateDirectories: true)
      let (hook, hookPort) = try hookServer(dir + "/hooks")
      defer { hook.stop() }
      let inventory = try fleet.writeInventory()
      _ = try write(
        "name: quick\nhosts: [web-1, web-2]\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        dir + "/quick.yml")
      _ = try write(
        "name: slow\nhosts: web-3\ntasks:\n  - name: wait\n    command: [sleep, \"5\"]\n", dir + "/slow.yml")
      let jobsText = """
        jobs:
          quick:
            playbook: quick.yml
            inventory: \(inventory)
            schedule: rate(2 seconds)
            overlap: skip
            catch_up: none
            notify:
              - {on: always, webhook_env: HOOK_URL}
              - {on: always, command: "cat > \(dir)/notified-$SIXTY_RUN_ID.json"}
          slow:
            playbook: slow.yml
            inventory: \(inventory)
            schedule: rate(3 seconds)
            overlap: skip
            catch_up: once

        """
      let jobs = try write(jobsText, dir + "/jobs.yml")
      var env = fleet.environment
      env["SIXTY_TEST_SECOND_RATES"] = "1"
      env["AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT"] = fleet.endpoint
      env["HOOK_URL"] = "http://127.0.0.1:\(hookPort)/hooks/secret-path-token"

      // The schedule preview.
      let next = try SixtyBinary.run(
        [
          "jobs", "next", "--jobs", jobs, "--count", "3", "--from", "2026-12-24T00:00:01Z", "--format",
          "json",
        ],
        environment: env)
      #expect(next.status == 0, "\(next.stderr)")
      #expect(next.stdout.contains("\"name\":\"quick\""))
      #expect(
        next.stdout.contains(
          "\"next\":[\"2026-12-24T00:00:02Z\",\"2026-12-24T00:00:04Z\",\"2026-12-24T00:00:06Z\"]"),
        "\(next.stdout)")

      // First life: about 13 seconds, six or seven fires of `quick`. Under the whole suite's load a
      // run of it can take longer than its 2 s period, and the next fire is then skipped.
      let first = try LocalProcess(
        SixtyBinary.path, ["jobs", "daemon", "--jobs", jobs], environment: env, logPath: dir + "/daemon-1.log"
      )
      defer { first.stop() }
      Thread.sleep(forTimeInterval: 13)
      kill(first.pid, SIGTERM)
      #expect(waitUntil(20) { !first.isRunning }, "the daemon did not stop: \(first.log)")
      #expect(first.exitStatus == 0, "\(first.log)")
      let stoppedAt = Date()
      let log1 = first.log
      #expect(log1.contains("msg=\"daemon stopped\""), "\(log1)")
      for line in log1.split(separator: "\n") {
        #expect(line.hasPrefix("time="), "not a structured line: \(line)")
      }
      #expect(!log1.contains("secret-path-token"), "the webhook URL's path leaked into the log")

      var all = try runs(env)
      #expect(!all.contains { $0["status"] as? String == "running" }, "a run was left running: \(all)")
      let quick = all.filter { $0["job"] as? String == "quick" && $0["status"] as? String != "skipped" }
      #expect(quick.count >= 3, "\(all)")
      for run in quick {
        #expect(run["status"] as? String == "succeeded", "\(run)")
        // Fires are computed from the schedule: on even seconds, started right after.
        let scheduled = try #require(time(run, "scheduled_for"))
        let started = try #require(time(run, "started"))
        #expect(Int(scheduled.timeIntervalSince1970) % 2 == 0)
        #expect(scheduled.timeIntervalSince1970.truncatingRemainder(dividingBy: 1) == 0)
        #expect(
          started.timeIntervalSince(scheduled) >= 0 && started.timeIntervalSince(scheduled) < 5, "\(run)")
      }
      // The daemon starts each run within a second of its fire time (its own log says when).
      let formatter = ISO8601DateFormatter()
      formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
      func field(_ line: Substring, _ name: String) -> Date? {
        guard
          let range = line.range(of: " \(name)=")
            ?? (line.hasPrefix("\(name)=") ? line.range(of: "\(name)=") : nil)
        else { return nil }
        return formatter.date(from: String(line[range.upperBound...].prefix { $0 != " " }))
      }
      let starts = log1.split(separator: "\n").filter { $0.contains("msg=\"run started\"") }
      #expect(starts.count >= 3)
      for line in starts {
        let logged = try #require(field(line, "time"))
        let scheduled = try #require(field(line, "scheduled"))
        #expect(
          logged.timeIntervalSince(scheduled) >= 0 && logged.timeIntervalSince(scheduled) < 1, "\(line)")
      }
      let slow = all.filter { $0["job"] as? String == "slow" }
      let slowRuns = slow.filter { $0["status"] as? String == "succeeded" }
      let skipped = slow.filter { $0["status"] as? String == "skipped" }
      #expect(!slowRuns.isEmpty, "\(slow)")
      #expect(!skipped.isEmpty, "\(slow)")
      #expect(
        skipped.allSatisfy { ($0["message"] as? String)?.contains("was still going (overlap: skip)") == true }
      )
      // Never two runs of the same job at once.
      let intervals = slowRuns.compactMap { run in
        time(run, "started").map { ($0, time(run, "finished") ?? .distantFuture) }
      }
      .sorted { $0.0 < $1.0 }
      for (a, b) in zip(intervals, intervals.dropFirst()) {
        #expect(a.1 <= b.0, "overlapping runs of 'slow'")
      }

      // Notifications: the webhook got every quick run (the first after one retry), the command too.
      let shown = try SixtyBinary.run(
        ["runs", "show", String(quick.last?["id"] as? Int ?? 0), "--format", "json"], environment: env)
      let firstQuick = try #require(
        try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])
      let notifications = firstQuick["notifications"] as? [[String: Any]] ?? []
      #expect(notifications.map { $0["kind"] as? String } == ["webhook", "command"], "\(firstQuick)")
      #expect(notifications.allSatisfy { $0["outcome"] as? String == "sent" }, "\(notifications)")
      #expect(notifications.first?["attempts"] as? Int == 2, "the webhook's first answer was 500")
      #expect(notifications.first?["target"] as? String == "http://127.0.0.1:\(hookPort)/… (from $HOOK_URL)")
      let hooks = try FileManager.default.contentsOfDirectory(atPath: dir + "/hooks").filter {
        $0.hasPrefix("hook-")
      }
      #expect(hooks.count >= quick.count + 1)
      let body = try String(contentsOfFile: dir + "/hooks/hook-2.json", encoding: .utf8)
      #expect(body.contains("\"event\":\"run.finished\"") && body.contains("\"job\":\"quick\""), "\(body)")
      let summary = try String(
        contentsOfFile: dir + "/notified-\(quick.last?["id"] as? Int ?? 0).json", encoding: .utf8)
      #expect(summary.contains("\"status\":\"succeeded\""))
      // Each run's output went to its log file.
      #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/logs/quick").count >= quick.count)

      // Down for a while: fires of both jobs are missed.
      Thread.sleep(forTimeInterval: max(0, 4 - Date().timeIntervalSince(stoppedAt)))
      let before = Set(all.compactMap { $0["id"] as? Int })
      let restartedAt = Date()
      let second = try LocalProcess(
        SixtyBinary.path, ["jobs", "daemon", "--jobs", jobs], environment: env, logPath: dir + "/daemon-2.log"
      )
      defer { second.stop() }
      #expect(
        waitUntil(10) {
          second.log.contains("msg=\"run started\"") && second.log.contains("trigger=catch-up")
        })
      let log2 = second.log
      #expect(log2.contains("msg=\"catching up a missed fire\"") && log2.contains("job=slow"), "\(log2)")
      #expect(log2.contains("msg=\"missed fires dropped (catch_up: none)\" job=quick"), "\(log2)")
      #expect(
        waitUntil(15) {
          ((try? runs(env)) ?? []).contains {
            $0["trigger"] as? String == "catch-up" && $0["status"] as? String != "running"
          }
        })
      all = try runs(env)
      let catchUps = all.filter {
        !before.contains($0["id"] as? Int ?? 0) && $0["trigger"] as? String == "catch-up"
      }
      #expect(catchUps.count == 1, "\(all)")
      #expect(catchUps.first?["job"] as? String == "slow")
      if let started = catchUps.first.flatMap({ time($0, "started") }) {
        #expect(started.timeIntervalSince(restartedAt) < 3)
      }

      // A bad jobs file on SIGHUP is reported and the running schedule kept.
      _ = try write("jobs:\n  quick:\n    schedule: every minute\n", jobs)
      kill(second.pid, SIGHUP)
      #expect(
        waitUntil(5) { second.log.contains("reload failed; keeping the previous schedule") }, "\(second.log)")
      #expect(second.log.contains("jobs.yml:3:15: error: the schedule of job 'quick'"), "\(second.log)")
      // So is a file whose job's playbook does not exist, at the playbook's FILE:LINE:COL.
      _ = try write(
        jobsText.replacingOccurrences(of: "playbook: quick.yml", with: "playbook: gone.yml"), jobs)
      kill(second.pid, SIGHUP)
      #expect(
        waitUntil(5) { second.log.contains("jobs.yml:3:15: error: the playbook of job 'quick'") },
        "\(second.log)")
      #expect(
        second.log.contains("does not exist (looked for ") && second.log.contains("gone.yml)"),
        "\(second.log)")
      let reloadedAt = Date()
      #expect(
        waitUntil(8) {
          ((try? runs(env)) ?? []).contains {
            $0["job"] as? String == "quick" && (time($0, "scheduled_for") ?? .distantPast) > reloadedAt
          }
        }, "quick stopped firing after a bad reload")
      // A good file adds a job.
      _ = try write(
        jobsText
          + "  later:\n    playbook: quick.yml\n    inventory: \(inventory)\n    schedule: \"0 3 * * *\"\n    timezone: Europe/Berlin\n",
        jobs)
      kill(second.pid, SIGHUP)
      #expect(
        waitUntil(5) { second.log.contains("msg=\"job added\"") && second.log.contains("job=later") },
        "\(second.log)")

      kill(second.pid, SIGTERM)
      #expect(waitUntil(20) { !second.isRunning }, "the daemon did not stop: \(second.log)")
      #expect(second.exitStatus == 0)
      #expect(!(try runs(env)).contains { $0["status"] as? String == "running" })
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func queuedFiresRunAfterTheCurrentOneAndStoppingAbortsPerPolicy() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let dir = fleet.directory
      let inventory = try fleet.writeInventory()
      _ = try write(
        "name: long\nhosts: all\npolicy: {concurrency: 1}\ntasks:\n  - name: wait\n    shell: 'echo started >> \(dir)/starts; sleep 2'\n",
        dir + "/long.yml")
      let jobs = try write(
        """
        jobs:
          long:
            playbook: long.yml
            inventory: \(inventory)
            schedule: rate(2 seconds)
            overlap: queue
            shutdown: abort

        """, dir + "/jobs.yml")
      var env = fleet.environment
      env["SIXTY_TEST_SECOND_RATES"] = "1"
      env["AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT"] = fleet.endpoint
      let daemon = try LocalProcess(
        SixtyBinary.path, ["jobs", "daemon", "--jobs", jobs], environment: env, logPath: dir + "/daemon.log")
      defer { daemon.stop() }
      #expect(
        waitUntil(20) { daemon.log.contains("msg=\"run started\"") && daemon.log.contains("trigger=queued") },
        "\(daemon.log)")
      // The queued run's first host is running its task: the hosts are local sshds, so each
      // task's line lands in this file, two from the first run, a third from the queued one.
      #expect(
        waitUntil(20) {
          ((try? String(contentsOfFile: dir + "/starts", encoding: .utf8)) ?? "").split(separator: "\n").count
            >= 3
        })
      kill(daemon.pid, SIGTERM)
      #expect(waitUntil(20) { !daemon.isRunning }, "the daemon did not stop: \(daemon.log)")
      #expect(daemon.exitStatus == 0)
      let log = daemon.log
      #expect(log.contains("msg=\"fire queued behind the running run (overlap: queue)\""), "\(log)")
      #expect(log.contains("msg=\"interrupting the running run (shutdown: abort)\""), "\(log)")
      let all = try runs(env)
      #expect(!all.contains { $0["status"] as? String == "running" })
      let ran = all.filter { $0["status"] as? String != "skipped" }.sorted {
        ($0["id"] as? Int ?? 0) < ($1["id"] as? Int ?? 0)
      }
      #expect(ran.first?["status"] as? String == "succeeded", "\(all)")
      #expect(ran.first?["trigger"] as? String == "schedule")
      let queued = try #require(ran.last)
      #expect(queued["trigger"] as? String == "queued", "\(all)")
      #expect(queued["status"] as? String == "aborted", "\(all)")
      #expect(queued["hosts_ok"] as? Int == 1, "the running host finished its task: \(queued)")
      // A queued run starts only after the one before it finished.
      for (a, b) in zip(ran, ran.dropFirst()) {
        #expect((time(a, "finished") ?? .distantFuture) <= (time(b, "started") ?? .distantPast))
      }
      let skipped = all.filter { $0["status"] as? String == "skipped" }.compactMap {
        $0["message"] as? String
      }
      #expect(skipped.contains { $0.contains("already queued behind the running one") }, "\(skipped)")
    }
  }

  @Test func jobsFilesAreCheckedWithPositions() throws {
    let dir = NSTemporaryDirectory() + "sixty-jobs-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let jobs = try write(
      """
      jobs:
        nightly:
          playbook: p.yml
          inventory: i.yml
          schedule: "0 3 * * *"
          timezone: Mars/Olympus
          overlap: sometimes
          window: {duration: 30m, cutoff: 1h}
          notify:
            - {on: failure}
            - {on: never, webhook: "ftp://x"}
        weekly:
          playbook: p.yml
          schedule: cron(0 4 ? * MON#5 *)
          catch_up: twice
          enabled: maybe

      """, dir + "/jobs.yml")
    let result = try SixtyBinary.run(["jobs", "next", "--jobs", jobs])
    #expect(result.status == 2)
    let expected = [
      "jobs.yml:6:15: error: 'Mars/Olympus' is not an IANA time zone name; expected something like UTC or Europe/Berlin.",
      "jobs.yml:7:14: error: 'sometimes' is not an overlap rule; expected skip or queue.",
      "jobs.yml:10:9: error: a notification of job 'nightly' has no target; expected webhook, webhook_env or command.",
      "jobs.yml:11:14: error: 'never' is not a notification trigger; expected failure, success or always.",
      "jobs.yml:11:30: error: 'ftp://x' is not an http(s) URL; expected something like https://hooks.example.com/sixty.",
      "jobs.yml:2:3: error: the window cutoff of job 'nightly' (1h) is not shorter than its duration (30m).",
      "jobs.yml:15:15: error: 'twice' is not a catch-up rule; expected none or once.",
      "jobs.yml:16:14: error: expected true or false for 'enabled' of job 'weekly', found 'maybe'.",
      "jobs.yml:12:3: error: the job 'weekly' has no inventory; expected playbook, inventory and schedule.",
    ]
    for line in expected {
      #expect(result.stderr.contains(line), "missing: \(line)\n\(result.stderr)")
    }
    #expect(result.stderr.contains("\(expected.count) errors, 0 warnings."), "\(result.stderr)")
    // A valid file previews in text, local and UTC times.
    _ = try write("hosts: all\ntasks:\n  - {name: t, shell: x}\n", dir + "/p.yml")
    _ = try write("hosts:\n  h-1: {address: 10.0.0.1, instance_id: i-00000000000000001}\n", dir + "/i.yml")
    let good = try write(
      """
      jobs:
        patch:
          playbook: p.yml
          inventory: i.yml
          schedule: cron(0 2 ? * SUN#1 *)
          timezone: Europe/Berlin
        hourly:
          playbook: p.yml
          inventory: i.yml
          schedule: rate(6 hours)
          enabled: false

      """, dir + "/good.yml")
    let preview = try SixtyBinary.run(
      ["jobs", "next", "--jobs", good, "--count", "2", "--from", "2027-03-01T00:00:00Z"])
    #expect(preview.status == 0, "\(preview.stderr)")
    #expect(
      preview.stdout == """
        patch  cron(0 2 ? * SUN#1 *) (Europe/Berlin)
          2027-03-07T02:00:00+01:00  (2027-03-07T01:00:00Z)
          2027-04-04T02:00:00+02:00  (2027-04-04T00:00:00Z)
        hourly  rate(6 hours) (UTC)  [disabled]
          2027-03-01T06:00:00Z
          2027-03-01T12:00:00Z

        """, "\(preview.stdout)")
    // Seconds are not a unit outside tests.
    let seconds = try write(
      "jobs:\n  x:\n    playbook: p.yml\n    inventory: i.yml\n    schedule: rate(5 seconds)\n",
      dir + "/s.yml")
    let refused = try SixtyBinary.run(
      ["jobs", "next", "--jobs", seconds], environment: ["SIXTY_TEST_SECOND_RATES": ""])
    #expect(refused.status == 2)
    #expect(refused.stderr.contains("s.yml:5:15: error: the schedule of job 'x'"), "\(refused.stderr)")
  }

  /// A job whose playbook is missing or does not validate, or whose schedule can never fire, is
  /// refused by `jobs next` and by the daemon's start, with the jobs file's positions; a schedule
  /// that fires once in four years is previewed.
  @Test func jobsThatCannotRunAreRefusedBeforeTheyFire() throws {
    let dir = NSTemporaryDirectory() + "sixty-jobs-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    _ = try write("hosts: web\ntasks:\n  - {name: t, shell: x}\n", dir + "/p.yml")
    _ = try write("hosts:\n  h-1: {address: 10.0.0.1}\n", dir + "/i.yml")
    let jobs = try write(
      "jobs:\n  a:\n    playbook: p.yml\n    inventory: i.yml\n    schedule: \"0 0 29 2 *\"\n  b:\n    playbook: q.yml\n    inventory: i.yml\n    schedule: \"0 0 29 2 *\"\n",
      dir + "/jobs.yml")
    let expected = [
      "jobs.yml:3:15: error: the playbook of job 'a' does not validate with the inventory \(dir)/i.yml (1 error, shown at its own position); expected `sixty validate` to pass.",
      "jobs.yml:7:15: error: the playbook of job 'b' does not exist (looked for \(dir)/q.yml); expected a readable file (a relative path is relative to the jobs file).",
      "p.yml:1:8: error: the play 'play 1' targets 'web', which is neither a group nor a host of \(dir)/i.yml.",
    ]
    let next = try SixtyBinary.run(["jobs", "next", "--jobs", jobs, "--from", "2026-12-01T00:00:00Z"])
    #expect(next.status == 2)
    for line in expected {
      #expect(next.stderr.contains(line), "missing: \(line)\n\(next.stderr)")
    }
    let daemon = try SixtyBinary.run(["jobs", "daemon", "--jobs", jobs, "--history", dir + "/history.sqlite"])
    #expect(daemon.status == 2)
    #expect(daemon.stderr.contains("the daemon did not start"), "\(daemon.stderr)")
    for line in expected {
      #expect(daemon.stderr.contains(line), "missing: \(line)\n\(daemon.stderr)")
    }
    // Fixed: the leap-day job is previewed years ahead.
    _ = try write(
      "hosts:\n  h-1: {address: 10.0.0.1, instance_id: i-00000000000000001, tags: {role: web}}\ngroups:\n  web: {match: role=web}\n",
      dir + "/i.yml")
    _ = try write("hosts: web\ntasks:\n  - {name: t, shell: x}\n", dir + "/q.yml")
    let fixed = try SixtyBinary.run(
      ["jobs", "next", "--jobs", jobs, "--from", "2026-12-01T00:00:00Z", "--count", "2"])
    #expect(fixed.status == 0, "\(fixed.stderr)")
    #expect(
      fixed.stdout == """
        a  0 0 29 2 * (UTC)
          2028-02-29T00:00:00Z
          2032-02-29T00:00:00Z
        b  0 0 29 2 * (UTC)
          2028-02-29T00:00:00Z
          2032-02-29T00:00:00Z

        """, "\(fixed.stdout)")
  }
}
