import Foundation
import Logging
import SixtyAudit
import SixtyBroker
import SixtyPostgres
import Testing

/// Broker replicas on one real PostgreSQL database: keys, replays and the audit chain are shared.
@Suite(.serialized) struct SharedBrokerEndToEndTests {
  static var canRun: Bool { LocalFleet.canRun && TestPostgres.binDirectory != nil }
  static var awsCLI: String? { LocalProcess.which("aws") }

  func keypair(_ dir: String, _ name: String = "k") throws -> String {
    let path = dir + "/" + name
    let made = try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path])
    #expect(made.status == 0)
    return path
  }

  func push(_ fleet: LocalFleet, port: Int, _ host: LocalFleet.Host, key: String) throws -> (Int32, String) {
    let result = try SixtyBinary.run(
      [
        "push", "--endpoint", "http://127.0.0.1:\(port)", "--instance-id", host.instanceID, "--os-user",
        fleet.user,
        "--public-key", key + ".pub",
      ], environment: fleet.environment)
    return (result.status, result.stdout + result.stderr)
  }

  @Test(.enabled(if: canRun, "needs root, sshd and PostgreSQL (make test installs them)"))
  func aKeyPushedThroughOneReplicaLetsALoginInThroughTheOther() throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("replicas")
    try withLocalFleet(
      LocalFleet(count: 2, store: url, storeEnvironment: postgres.environment, replicas: 2, agentReplica: 1)
    ) { fleet in
      let key = try keypair(fleet.directory)
      let host = fleet.hosts[0]
      // Agents ask the second replica; the key goes through the first.
      let (status, output) = try push(fleet, port: fleet.brokerPorts[0], host, key: key)
      #expect(status == 0, "\(output)")
      let login = try runProgram("/usr/bin/ssh", fleet.sshArguments(host, key: key) + ["echo", "in"])
      #expect(login.status == 0, "\(login.stderr)\n\(host.sshLog)\n\(fleet.otherBrokers[0].log)")
      #expect(login.stdout == "in\n")
      // A key for one host is no use on the other.
      let other = try runProgram("/usr/bin/ssh", fleet.sshArguments(fleet.hosts[1], key: key) + ["true"])
      #expect(other.status == 255)
      // Both replicas' records form one chain, which verifies; it holds the first replica's push
      // and the second one's fetches.
      let verify = try SixtyBinary.run(
        ["audit", "verify", "--store", url], environment: postgres.environment)
      #expect(verify.status == 0, "\(verify.stderr)")
      #expect(verify.stdout.contains("chain intact"), "\(verify.stdout)")
      let export = try SixtyBinary.run(
        ["audit", "export", "--store", url], environment: postgres.environment)
      #expect(export.status == 0, "\(export.stderr)")
      let lines = export.stdout.split(separator: "\n")
      #expect(lines.contains { $0.contains("\"event\":\"push\"") && $0.contains("\"outcome\":\"accepted\"") })
      #expect(lines.contains { $0.contains("\"event\":\"agent_fetch\"") && $0.contains("1 active key") })
      // The exported chain verifies as a file too.
      let file = fleet.directory + "/exported.jsonl"
      try export.stdout.write(toFile: file, atomically: true, encoding: .utf8)
      let fileVerify = try SixtyBinary.run(["audit", "verify", file])
      #expect(fileVerify.status == 0, "\(fileVerify.stderr)")
      #expect(!export.stdout.contains(postgres.password))
    }
  }

  @Test(.enabled(if: canRun, "needs root, sshd and PostgreSQL (make test installs them)"))
  func aRunOutlivesTheBrokerItStartedWith() throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("failover")
    try withLocalFleet(
      LocalFleet(
        count: 20, hostsPerSSHD: 10, store: url, storeEnvironment: postgres.environment, replicas: 2,
        agentAsksEveryReplica: true, agentTimeout: "5s")
    ) { fleet in
      let inventory = try fleet.writeInventory()
      let playbook = fleet.directory + "/steady.yml"
      try "name: steady\nhosts: all\ntasks:\n  - name: work\n    command: [sleep, \"0.6\"]\n"
        .write(toFile: playbook, atomically: true, encoding: .utf8)
      let policy = fleet.directory + "/policy.yml"
      try "concurrency: 2\n".write(toFile: policy, atomically: true, encoding: .utf8)
      let endpoints = fleet.brokerPorts.map { "http://127.0.0.1:\($0)" }.joined(separator: ",")
      let run = try LocalProcess(
        SixtyBinary.path,
        ["run", playbook, "-i", inventory, "--policy", policy, "--endpoint", endpoints, "--no-progress"],
        environment: fleet.environment, logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      // A few hosts in, the first replica dies without a word.
      let deadline = Date().addingTimeInterval(60)
      while Date() < deadline, run.isRunning, run.log.components(separatedBy: "| ok").count < 4 {
        usleep(50_000)
      }
      kill(fleet.broker.pid, SIGKILL)
      while Date() < deadline, run.isRunning { usleep(100_000) }
      #expect(run.exitStatus == 0, "\(run.log)")
      #expect(!run.log.contains("Permission denied"), "\(run.log)")
      #expect(run.log.contains("20 ok") || run.log.contains("ok=20"), "\(run.log)")
      // The second replica served the rest, into the same chain, which verifies.
      let verify = try SixtyBinary.run(
        ["audit", "verify", "--store", url], environment: postgres.environment)
      #expect(verify.status == 0, "\(verify.stderr)")
      let export = try SixtyBinary.run(
        ["audit", "export", "--store", url], environment: postgres.environment)
      let accepted = export.stdout.split(separator: "\n").filter {
        $0.contains("\"event\":\"push\"") && $0.contains("\"outcome\":\"accepted\"")
      }
      #expect(accepted.count >= 20, "\(accepted.count) accepted pushes")
    }
  }

  @Test(.enabled(if: canRun, "needs root, sshd and PostgreSQL (make test installs them)"))
  func editedOrTruncatedChainsInTheDatabaseAreNamed() throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("tamper")
    try withLocalFleet(
      LocalFleet(count: 1, store: url, storeEnvironment: postgres.environment, replicas: 1)
    ) { fleet in
      for index in 0..<3 {
        // Another key each time: the same key pushed twice in one second is the same signed request.
        let key = try keypair(fleet.directory, "k\(index)")
        let (status, output) = try push(fleet, port: fleet.brokerPort, fleet.hosts[0], key: key)
        #expect(status == 0, "\(output)")
      }
      _ = try postgres.psql(
        url, "UPDATE broker_audit SET line = replace(line, 'accepted', 'refused') WHERE sequence = 2")
      let edited = try SixtyBinary.run(
        ["audit", "verify", "--store", url], environment: postgres.environment)
      #expect(edited.status == 1)
      #expect(edited.stderr.contains("record 2"), "\(edited.stderr)")
      #expect(edited.stderr.contains("was modified"), "\(edited.stderr)")
      _ = try postgres.psql(url, "DELETE FROM broker_audit WHERE sequence >= 2")
      let truncated = try SixtyBinary.run(
        ["audit", "verify", "--store", url], environment: postgres.environment)
      #expect(truncated.status == 1)
      #expect(truncated.stderr.contains("records were removed from its end"), "\(truncated.stderr)")
    }
  }

  @Test(.enabled(if: TestPostgres.binDirectory != nil, "needs PostgreSQL (make test installs it)"))
  func concurrentAppendsAndReplaysAcrossTwoStores() async throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("chain")
    let logger = Logger(label: "test")
    let location = try PostgresLocation.parse(url, origin: "test", environment: postgres.environment)
    // Four replicas starting together apply the migrations once. The deadline is generous: this
    // test's tasks share the cooperative pool with tests that block its threads for seconds.
    let stores = try await withThrowingTaskGroup(of: SharedBrokerStore.self) { group in
      for _ in 0..<4 {
        group.addTask {
          try await SharedBrokerStore.open(location, operationTimeout: .seconds(120), logger: logger)
        }
      }
      var stores: [SharedBrokerStore] = []
      for try await store in group { stores.append(store) }
      return stores
    }
    defer { for store in stores { store.database.close() } }
    #expect(
      try postgres.psql(url, "SELECT count(*) FROM sixty_migrations WHERE component = 'broker'")
        == "\(SharedBrokerStore.migrations.count)\n")
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let key = KeyStore.Key(
      line: "ssh-ed25519 AAAA", fingerprint: "SHA256:x", expiresAt: now.addingTimeInterval(60),
      requestID: "r",
      principal: "p", from: ["127.0.0.0/8"])
    // 200 appends and accepts at once through four pools: one linear chain.
    try await withThrowingTaskGroup(of: Void.self) { group in
      for index in 0..<200 {
        let store = stores[index % stores.count]
        group.addTask {
          let record = AuditRecord(
            time: now, event: "push", requestID: "r\(index)", principal: "p", source: nil, instance: "i-1",
            osUser: "ops", fingerprint: nil, outcome: "accepted", reason: nil)
          if index % 2 == 0 {
            try await store.append(record)
          } else {
            let verdict = try await store.accept(
              replayKey: "sig-\(index)", signedAt: now, forgetAt: now.addingTimeInterval(600), record: record,
              key: key, instance: "i-1", user: "ops")
            #expect(verdict == .fresh)
          }
        }
      }
      try await group.waitForAll()
    }
    // The same signature through another replica is a replay, and adds nothing.
    let replayed = try await stores[2].accept(
      replayKey: "sig-1", signedAt: now, forgetAt: now.addingTimeInterval(600),
      record: AuditRecord(
        time: now, event: "push", requestID: "again", principal: "p", source: nil, instance: "i-1",
        osUser: "ops",
        fingerprint: nil, outcome: "accepted", reason: nil), key: key, instance: "i-1", user: "ops")
    #expect(replayed == .replayed)
    #expect(try await stores[3].check("sig-3", now: now) == .replayed)
    #expect(try await stores[3].check("sig-unknown", now: now) == .fresh)
    // Records wait (with no lock) for a chaining pass of any replica; one more pass leaves none.
    try await stores[0].chainPending()
    #expect(try await stores[1].pendingRecords() == 0)
    let (sequence, _) = try await stores[0].head()
    #expect(sequence == 200)
    let served = try await stores[1].serve(instance: "i-1", user: "ops", now: now) { keys in
      AuditRecord(
        time: now, event: "agent_fetch", requestID: "f", principal: nil, source: nil, instance: "i-1",
        osUser: "ops",
        fingerprint: nil, outcome: "served", reason: "\(keys.count)")
    }
    #expect(served.count == 64)  // at most 64 keys a slot, the newest
    #expect(try await stores[1].activeKeys(now: now) == 100)
    #expect(try await stores[1].activeKeys(now: now.addingTimeInterval(61)) == 0)
    // Exported, the chain verifies as an audit log.
    let file = NSTemporaryDirectory() + "/sixty-chain-\(UUID().uuidString).jsonl"
    defer { try? FileManager.default.removeItem(atPath: file) }
    #expect(FileManager.default.createFile(atPath: file, contents: nil))
    let handle = try #require(FileHandle(forWritingAtPath: file))
    let count = try await stores[0].export(batch: 37) { line in handle.write(Data(line)) }
    try handle.close()
    #expect(count == 201)
    let summary = try AuditVerifier.verify(path: file)
    #expect(summary.records == 201)
    try await stores[0].purge(now: now.addingTimeInterval(3600))
    #expect(try postgres.psql(url, "SELECT count(*) FROM broker_keys") == "0\n")
    #expect(try postgres.psql(url, "SELECT count(*) FROM broker_replays") == "0\n")
  }

  @Test(.enabled(if: TestPostgres.binDirectory != nil, "needs PostgreSQL (make test installs it)"))
  func writesArriveTogetherShareTransactionsAndABadOneFailsAlone() async throws {
    let postgres = try TestPostgres.shared()
    let url = try postgres.database("group")
    let location = try PostgresLocation.parse(url, origin: "test", environment: postgres.environment)
    let store = try await SharedBrokerStore.open(
      location, operationTimeout: .seconds(120), logger: Logger(label: "test"))
    defer { store.database.close() }
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    @Sendable func record(_ id: String) -> AuditRecord {
      AuditRecord(
        time: now, event: "push", requestID: id, principal: "p", source: nil, instance: "i-1", osUser: "ops",
        fingerprint: nil, outcome: "accepted", reason: nil)
    }
    @Sendable func key(_ id: String) -> KeyStore.Key {
      KeyStore.Key(
        line: "ssh-ed25519 AAAA\(id)", fingerprint: "SHA256:\(id)", expiresAt: now.addingTimeInterval(60),
        requestID: id, principal: "p", from: [])
    }
    enum Result: Equatable { case fresh, replayed, keys(Int), appended, failed }
    // 300 writes at once through one store: acceptances (each replay key twice), fetches, plain
    // records, and one acceptance whose instance the database refuses (a NUL byte in TEXT).
    let results = try await withThrowingTaskGroup(of: (Int, Result).self) { group in
      for index in 0..<300 {
        group.addTask {
          do {
            switch index % 3 {
            case 0:
              let verdict = try await store.accept(
                replayKey: "sig-\(index / 6)", signedAt: now, forgetAt: now.addingTimeInterval(600),
                record: record("a\(index)"), key: key("\(index)"),
                instance: index == 150 ? "i-\u{0}bad" : "i-1", user: "ops")
              return (index, verdict == .fresh ? .fresh : .replayed)
            case 1:
              let keys = try await store.serve(instance: "i-1", user: "ops", now: now) { keys in
                record("f\(index)-\(keys.count)")
              }
              return (index, .keys(keys.count))
            default:
              try await store.append(record("r\(index)"))
              return (index, .appended)
            }
          } catch {
            return (index, .failed)
          }
        }
      }
      var results = [Result](repeating: .failed, count: 300)
      for try await (index, result) in group { results[index] = result }
      return results
    }
    #expect(results.indices.filter { results[$0] == .failed } == [150])
    // Each replay key went to two acceptances (indices 6k and 6k+3): one is fresh, except the pair
    // whose fresh claim was the refused write (index 150 = 6 * 25).
    for pair in 0..<50 {
      let verdicts = [results[6 * pair], results[6 * pair + 3]]
      if pair == 25 {
        #expect(verdicts.filter { $0 == .fresh }.count <= 1)
      } else {
        #expect(verdicts.filter { $0 == .fresh }.count == 1, "replay key sig-\(pair): \(verdicts)")
        #expect(verdicts.filter { $0 == .replayed }.count == 1, "replay key sig-\(pair): \(verdicts)")
      }
    }
    let fresh = results.filter { $0 == .fresh }.count
    let records = fresh + 100 + 100
    try await store.chainPending()
    let (sequence, _) = try await store.head()
    #expect(sequence == records)
    #expect(try postgres.psql(url, "SELECT count(*) FROM broker_keys") == "\(fresh)\n")
    #expect(try postgres.psql(url, "SELECT count(*) FROM broker_audit") == "\(records)\n")
    // Writes that arrived while a transaction was in flight shared the next one.
    let committed = store.committed
    #expect(committed.writes == 299)
    #expect(committed.transactions < 299, "\(committed)")
    // The records form one chain that verifies.
    let file = NSTemporaryDirectory() + "/sixty-group-\(UUID().uuidString).jsonl"
    defer { try? FileManager.default.removeItem(atPath: file) }
    #expect(FileManager.default.createFile(atPath: file, contents: nil))
    let handle = try #require(FileHandle(forWritingAtPath: file))
    #expect(try await store.export { line in handle.write(Data(line)) } == records)
    try handle.close()
    #expect(try AuditVerifier.verify(path: file).records == records)
    // A record that a replica committed and left waiting when it died is chained by the next
    // pass of any replica, after what was chained before.
    let left = AuditRecord(
      time: now, event: "agent_fetch", requestID: "left-behind", principal: nil, source: nil, instance: "i-1",
      osUser: "ops", fingerprint: nil, outcome: "served", reason: "0 active keys")
    let body = left.unchained.replacingOccurrences(of: "'", with: "''")
    _ = try postgres.psql(url, "INSERT INTO broker_audit_pending (body) VALUES ('\(body)')")
    let other = try await SharedBrokerStore.open(
      location, operationTimeout: .seconds(120), logger: Logger(label: "test"))
    defer { other.database.close() }
    #expect(try await other.chainPending() == 1)
    #expect(try await other.head().sequence == records + 1)
    let last = try postgres.psql(url, "SELECT line FROM broker_audit ORDER BY sequence DESC LIMIT 1")
    #expect(last.contains("\"request_id\":\"left-behind\""), "\(last)")
  }

  @Test func storeSettingsAreCheckedWhereTheyAreWritten() throws {
    let dir = NSTemporaryDirectory() + "/sixty-store-config-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let config = dir + "/broker.yml"
    try """
    listen: 127.0.0.1:0
    audit_log: \(dir)/audit.jsonl
    store: postgresql://sixty@127.0.0.1/sixty?sslmode=sometimes
    principals: {}
    hosts: {}
    """.write(toFile: config, atomically: true, encoding: .utf8)
    let result = try SixtyBinary.run(["broker", "public-key", "--config", config])
    #expect(result.status != 0)
    #expect(result.stderr.contains("broker.yml:3:8"), "\(result.stderr)")
    #expect(result.stderr.contains("sslmode is 'sometimes'"), "\(result.stderr)")
    #expect(result.stderr.contains("broker.yml:2:1"), "\(result.stderr)")
    #expect(result.stderr.contains("'audit_log' cannot be used with 'store'"), "\(result.stderr)")
  }
}

/// `postgresql://` URLs as libpq reads them.
@Suite struct PostgresLocationTests {
  func parse(_ text: String, _ environment: [String: String] = [:]) throws(PostgresLocation.Failure)
    -> PostgresLocation
  {
    try PostgresLocation.parse(text, origin: "--history", environment: environment)
  }

  @Test func hostsPortsUsersAndDatabases() throws {
    let plain = try parse("postgresql://ops@db.example.com/sixty")
    #expect(
      plain.host == "db.example.com" && plain.port == 5432 && plain.user == "ops" && plain.database == "sixty"
    )
    #expect(plain.sslMode == .prefer)
    let v6 = try parse("postgres://ops@[::1]:6543/x?sslmode=verify-full&application_name=runner")
    #expect(
      v6.host == "::1" && v6.port == 6543 && v6.sslMode == .verifyFull && v6.applicationName == "runner")
    #expect(v6.description == "postgresql://ops@[::1]:6543/x?sslmode=verify-full")
    let socket = try parse("postgresql://ops@/sixty?host=/run/postgresql&port=5433")
    #expect(socket.unixSocketPath == "/run/postgresql/.s.PGSQL.5433")
    let defaults = try parse("postgresql://db/", ["PGUSER": "svc"])
    #expect(defaults.user == "svc" && defaults.database == "svc")
  }

  @Test func passwordsNeverShow() throws {
    let inline = try parse("postgresql://ops:s%40cret@db/sixty")
    #expect(inline.password == "s@cret")
    #expect(!inline.description.contains("cret"))
    let env = try parse("postgresql://ops@db/sixty", ["PGPASSWORD": "from-env"])
    #expect(env.password == "from-env")
    let dir = NSTemporaryDirectory() + "/sixty-pw-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "from-file\nignored\n".write(toFile: dir + "/pw", atomically: true, encoding: .utf8)
    let file = try parse("postgresql://ops@db/sixty?password_file=\(dir)/pw", ["PGPASSWORD": "from-env"])
    #expect(file.password == "from-file")
    #expect(throws: PostgresLocation.Failure.self) {
      try parse("postgresql://ops@db/sixty?password_file=\(dir)/none")
    }
  }

  @Test(arguments: [
    ("mysql://db/x", "not a postgresql:// URL"),
    ("postgresql://db/x?sslmode=on", "sslmode is 'on'"),
    ("postgresql://db:99999/x", "the port '99999'"),
    ("postgresql://db/x?sslcert=/x", "the parameter 'sslcert' is not one Sixty understands"),
    ("postgresql:///x", "names no host"),
    ("postgresql://db/x y", "spaces, control characters or non-ASCII"),
    ("postgresql://dб/x", "spaces, control characters or non-ASCII"),
    ("postgresql://db/x?host=relative", "socket directory"),
    ("postgresql://db/%zz", "badly percent-encoded"),
  ])
  func badURLsAreRefusedWithTheReason(_ text: String, _ reason: String) {
    do {
      _ = try parse(text)
      Issue.record("\(text) was accepted")
    } catch {
      #expect(error.description.hasPrefix("--history: "), "\(error)")
      #expect(error.description.contains(reason), "\(error)")
    }
  }
}
