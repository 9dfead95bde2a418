import Foundation
import Testing

/// Sharded runs (`--shard I/N`) on a real PostgreSQL history and real sshd hosts: four shards
/// started at once give the same per-host outcome as one runner and appear as one run, and a
/// failure threshold passed across shards stops every shard.
@Suite(.serialized) struct ShardedRunEndToEndTests {
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

  func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

  /// Starts the four shards at once and waits for them all; their exit statuses and logs.
  func runShards(
    _ arguments: [String], count: Int, environment: [String: String], directory: String, label: String
  ) throws -> [(status: Int32, log: String)] {
    var processes: [LocalProcess] = []
    defer { for process in processes { process.stop() } }
    for index in 1...count {
      processes.append(
        try LocalProcess(
          SixtyBinary.path, arguments + ["--shard", "\(index)/\(count)"], environment: environment,
          logPath: directory + "/\(label)-\(index).log"))
    }
    #expect(waitUntil(300) { processes.allSatisfy { !$0.isRunning } }, "the shards did not end")
    return processes.map { ($0.exitStatus ?? -1, $0.log) }
  }

  /// Each host's status and its tasks' statuses, from a recorded run document.
  func outcomes(_ document: [String: Any]) throws -> [String: String] {
    let hosts = try #require(document["hosts"] as? [[String: Any]])
    var result: [String: String] = [:]
    for host in hosts {
      let name = try #require(host["host"] as? String)
      let tasks = (host["tasks"] as? [[String: Any]] ?? []).map {
        "\($0["name"] ?? "?")=\($0["status"] ?? "?")"
      }
      #expect(result[name] == nil, "\(name) is recorded twice")
      result[name] = "\(host["status"] ?? "?") \(tasks.joined(separator: ","))"
    }
    return result
  }

  @Test(.enabled(if: canRun, "needs root, sshd and PostgreSQL (make test installs them)"))
  func fourShardsGiveTheSameOutcomeAsOneRunnerAndAreOneRun() throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("shards")
    try withLocalFleet(LocalFleet(count: 40, hostsPerSSHD: 10, agentTimeout: "5s")) { fleet in
      let dir = fleet.directory
      let inventory = try fleet.writeInventory()
      // web-7, web-14, … fail their first task; the second then does not run on them.
      let playbook = try write(
        """
        name: sharded
        hosts: all
        policy:
          concurrency: 4
          batches: [1, "50%"]
        tasks:
          - name: check
            command: [sh, -c, 'case "{{ host.name }}" in web-7|web-14|web-21|web-28|web-35) echo bad; exit 3;; *) echo good;; esac']
          - name: after
            needs: [check]
            command: [echo, "{{ host.name }}"]

        """, dir + "/play.yml")
      var env = fleet.environment
      env["SIXTY_HISTORY"] = url
      env["PGPASSWORD"] = postgres.password
      env["SIXTY_KNOWN_HOSTS"] = dir + "/known_hosts"
      let common = ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"]

      let single = try SixtyBinary.run(common, environment: env)
      #expect(single.status == 1, "\(single.stdout)\(single.stderr)")
      let shards = try runShards(
        common + ["--run-id", "nightly-42"], count: 4, environment: env, directory: dir, label: "shard")
      for (index, shard) in shards.enumerated() {
        #expect(shard.status == 0 || shard.status == 1, "shard \(index + 1): \(shard.log)")
        #expect(shard.log.contains("run id 'nightly-42'), shard \(index + 1)/4"), "\(shard.log)")
      }
      #expect(shards.contains { $0.status == 1 })

      // One run for the four shards, beside the single runner's.
      let listed = try SixtyBinary.run(["runs", "list", "--format", "json"], environment: env)
      let runs = try #require(try json(listed.stdout) as? [[String: Any]], "\(listed.stderr)")
      #expect(runs.count == 2, "\(listed.stdout)")
      let sharded = try #require(runs.first { $0["run_key"] as? String == "nightly-42" }, "\(listed.stdout)")
      #expect(sharded["shards"] as? Int == 4)
      #expect(sharded["shards_ended"] as? Int == 4)
      #expect(sharded["status"] as? String == "failed", "\(sharded)")
      #expect(sharded["hosts_total"] as? Int == 40)
      #expect(sharded["hosts_failed"] as? Int == 5)
      #expect(sharded["hosts_ok"] as? Int == 35)
      let text = try SixtyBinary.run(["runs", "list"], environment: env)
      #expect(text.stdout.contains("failed (shards 4/4 ended)"), "\(text.stdout)")

      // The same outcome, host by host.
      let singleID = try #require(runs.first { $0["run_key"] == nil }?["id"] as? Int)
      let one = try SixtyBinary.run(["runs", "show", String(singleID), "--format", "json"], environment: env)
      let four = try SixtyBinary.run(["runs", "show", "nightly-42", "--format", "json"], environment: env)
      #expect(four.status == 0, "\(four.stderr)")
      let oneDocument = try #require(try json(one.stdout) as? [String: Any])
      let fourDocument = try #require(try json(four.stdout) as? [String: Any])
      let expected = try outcomes(oneDocument)
      let got = try outcomes(fourDocument)
      #expect(expected.count == 40)
      #expect(got == expected)
      #expect(expected["web-7"]?.hasPrefix("failed") == true, "\(expected)")
      // Every host was run by one shard; each shard's state is shown.
      let hosts = try #require(fourDocument["hosts"] as? [[String: Any]])
      #expect(Set(hosts.compactMap { $0["shard"] as? Int }) == [1, 2, 3, 4])
      let states = try #require(fourDocument["shard_states"] as? [[String: Any]])
      #expect(states.map { $0["shard"] as? Int } == [1, 2, 3, 4])
      let shown = try SixtyBinary.run(["runs", "show", "nightly-42"], environment: env)
      #expect(shown.stdout.contains("shards     4/4 ended"), "\(shown.stdout)")
      #expect(shown.stdout.contains("shard 1/4  "), "\(shown.stdout)")

      // The same run id with another shard count, or a shard that already ran, is refused.
      let mismatched = try SixtyBinary.run(
        common + ["--run-id", "nightly-42", "--shard", "1/3"], environment: env)
      #expect(mismatched.status == 2, "\(mismatched.stdout)\(mismatched.stderr)")
      #expect(
        mismatched.stderr.contains("has 4 shards, and this is --shard 1/3; expected --shard I/4"),
        "\(mismatched.stderr)")
      let again = try SixtyBinary.run(
        common + ["--run-id", "nightly-42", "--shard", "2/4"], environment: env)
      #expect(again.status == 2, "\(again.stdout)\(again.stderr)")
      #expect(again.stderr.contains("shard 2/4 of run"), "\(again.stderr)")
      #expect(
        again.stderr.contains("already ran (failed)") || again.stderr.contains("already ran (succeeded)"))

      // A rerun of the merged run's failed hosts runs the five that failed.
      let shardedID = try #require(sharded["id"] as? Int)
      let rerun = try SixtyBinary.run(
        ["runs", "rerun", String(shardedID), "--failed", "--endpoint", fleet.endpoint, "--no-progress"],
        environment: env)
      #expect(rerun.status == 1, "\(rerun.stdout)\(rerun.stderr)")
      let line = rerun.stdout.split(separator: "\n").first {
        $0.hasPrefix("rerunning run \(shardedID) on its 5 failed hosts: ")
      }
      let names = line.map {
        Set($0.split(separator: ":")[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
      }
      #expect(names == ["web-7", "web-14", "web-21", "web-28", "web-35"], "\(rerun.stdout)")
    }
  }

  @Test(.enabled(if: canRun, "needs root, sshd and PostgreSQL (make test installs them)"))
  func aFailureThresholdPassedAcrossShardsStopsEveryShard() throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("shardfail")
    try withLocalFleet(LocalFleet(count: 40, hostsPerSSHD: 10, agentTimeout: "5s")) { fleet in
      let dir = fleet.directory
      let inventory = try fleet.writeInventory()
      let playbook = try write(
        """
        name: failing
        hosts: all
        policy:
          concurrency: 1
          max_failures: 3
        tasks:
          - name: fail
            command: [sh, -c, 'sleep 1; exit 1']

        """, dir + "/fail.yml")
      var env = fleet.environment
      env["SIXTY_HISTORY"] = url
      env["PGPASSWORD"] = postgres.password
      env["SIXTY_KNOWN_HOSTS"] = dir + "/known_hosts"
      let shards = try runShards(
        ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress"], count: 4,
        environment: env, directory: dir, label: "fail")
      for shard in shards {
        #expect(shard.status == 4, "\(shard.log)")
        #expect(
          shard.log.contains("failed across the run's 4 shards, more than the threshold of 3"), "\(shard.log)"
        )
      }
      let listed = try SixtyBinary.run(["runs", "list", "--format", "json"], environment: env)
      let runs = try #require(try json(listed.stdout) as? [[String: Any]], "\(listed.stderr)")
      #expect(runs.count == 1, "\(listed.stdout)")
      let run = try #require(runs.first)
      #expect(run["status"] as? String == "aborted", "\(run)")
      #expect((run["run_key"] as? String)?.hasPrefix("derived-") == true, "\(run)")
      let id = try #require(run["id"] as? Int)
      let shown = try SixtyBinary.run(["runs", "show", String(id), "--format", "json"], environment: env)
      let document = try #require(try json(shown.stdout) as? [String: Any])
      let hosts = try #require(document["hosts"] as? [[String: Any]])
      let started = hosts.filter { ($0["status"] as? String) != "not started" }
      // More than 3 failures stop the run: the 4th failure, and what each shard (concurrency 1)
      // started on a count it read before that one reached it — usually one round, two when
      // a loaded machine delays the reads.
      #expect(started.count >= 4, "\(started.count)")
      #expect(started.count <= 3 + 1 + 2 * 4, "\(started.count) hosts started")
      #expect(hosts.count == 40)
      // Started again with the same inputs while its shards are over: a new run of the same key.
      let again = try SixtyBinary.run(
        ["run", playbook, "-i", inventory, "--endpoint", fleet.endpoint, "--no-progress", "--shard", "1/4"],
        environment: env)
      #expect(again.status == 4, "\(again.stdout)\(again.stderr)")
      let relisted = try SixtyBinary.run(["runs", "list", "--format", "json"], environment: env)
      let after = try #require(try json(relisted.stdout) as? [[String: Any]])
      #expect(after.count == 2, "\(relisted.stdout)")
      #expect(after.first?["run_key"] as? String == run["run_key"] as? String)
      #expect(after.first?["status"] as? String == "running", "one of four shards ended")
    }
  }

  @Test func shardFlagsAreChecked() throws {
    let dir = NSTemporaryDirectory() + "/sixty-shard-flags-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let playbook = try write("name: p\nhosts: all\ntasks:\n  - {name: a, command: [true]}\n", dir + "/p.yml")
    let inventory = try write("hosts:\n  a: {address: 10.0.0.1, instance_id: i-1}\n", dir + "/i.yml")
    let base = ["run", playbook, "-i", inventory]
    let pg = ["--history", "postgresql://sixty@127.0.0.1:9/none"]
    let cases: [([String], String)] = [
      (["--shard", "0/4"] + pg, "--shard '0/4' names shard 0 of 4 (shards count from 1); expected I/N"),
      (["--shard", "5/4"] + pg, "names shard 5 of 4"),
      (["--shard", "two/4"] + pg, "does not hold two whole numbers"),
      (["--shard", "1/2000"] + pg, "has 2000 shards"),
      (["--shard", "1:4"] + pg, "is not of the form I/N"),
      (
        ["--shard", "1/4", "--history", dir + "/h.sqlite"],
        "--shard needs a shared history, and '\(dir)/h.sqlite' is a SQLite file; expected --history postgresql://"
      ),
      (["--shard", "1/4", "--no-history"] + pg, "--shard needs the run history"),
      (["--run-id", "x"] + pg, "--run-id names the run that shards share; expected it with --shard I/N."),
      (["--shard", "1/4", "--run-id", "a b"] + pg, "holds a space, a control or a non-ASCII character"),
      (["--shard", "1/4", "--run-id", "é"] + pg, "holds a space, a control or a non-ASCII character"),
      (["--shard", "1/4", "--run-id", String(repeating: "k", count: 129)] + pg, "expected at most 128"),
      (["--shard", "1/4", "--run-id", ""] + pg, "--run-id is empty"),
    ]
    for (extra, expected) in cases {
      let result = try SixtyBinary.run(base + extra)
      #expect(result.status == 64 || result.status == 2, "\(extra): \(result.status) \(result.stderr)")
      #expect(result.stderr.contains(expected), "\(extra): \(result.stderr)")
    }
    // A dry run records nothing: it shows the shard's part whatever the history.
    let dry = try SixtyBinary.run(
      base + [
        "--shard", "1/1", "--dry-run", "--history", dir + "/h.sqlite", "--endpoint", "http://127.0.0.1:9",
      ])
    #expect(dry.status == 0, "\(dry.stderr)")
    #expect(
      dry.stdout.contains("Shard 1/1: 1 of the run's 1 target (batches are this shard's"), "\(dry.stdout)")
  }
}
