import Foundation
import GRDB
import Testing

@testable import SixtyHistory

@Suite struct HistoryTests {
  let directory: String

  init() throws {
    directory = NSTemporaryDirectory() + "sixty-history-\(getpid())-\(UUID().uuidString)"
  }

  func open() throws -> History { try History(path: directory + "/state/sixty/history.sqlite") }

  func newRun(_ hosts: Int = 2, job: String? = nil, process: ProcessIdentity = .current) -> NewRun {
    NewRun(
      playbook: "/srv/playbooks/patch.yml", playbookSHA256: String(repeating: "ab", count: 32),
      inventory: "/srv/inventory.yml", policy: nil, extraVarNames: ["version"], job: job,
      trigger: job == nil ? .manual : .schedule, process: process, hostsTotal: hosts)
  }

  /// A running process, and a way to wait for it to exit (and reap it).
  func process() throws -> (ProcessIdentity, () -> Void) {
    var pid: pid_t = 0
    let words: [String] = ["/bin/sh", "-c", "sleep 0.2"]
    let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    #expect(posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ) == 0)
    let identity = ProcessIdentity(pid: pid, start: ProcessIdentity.startTime(of: pid) ?? "")
    #expect(identity.isAlive)
    return (
      identity,
      {
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
      }
    )
  }

  @Test func createsPrivateFilesInWALModeWithMigrations() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try open()
    var info = stat()
    #expect(stat(directory + "/state/sixty", &info) == 0)
    #expect(info.st_mode & 0o777 == 0o700)
    #expect(stat(history.path, &info) == 0)
    #expect(info.st_mode & 0o777 == 0o600)
    let mode = try history.pool!.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
    #expect(mode == "wal")
    let applied = try history.pool!.read { try History.migrator.appliedMigrations($0) }
    #expect(
      applied == [
        "v1: runs, hosts, tasks, locks, jobs, notifications",
        "v2: plays and the run's key fingerprint, for reports",
        "v3: an ad-hoc run's command, for reruns",
      ])
    // Opening again applies nothing new and keeps the data.
    let id = try history.begin(newRun())
    let again = try open()
    #expect(try again.run(id: id)?.status == .running)
  }

  @Test func aFirstVersionHistoryIsUpgradedWithItsRunsKept() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/old.sqlite"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    do {
      let queue = try DatabaseQueue(path: path)
      try History.migrator.migrate(queue, upTo: "v1: runs, hosts, tasks, locks, jobs, notifications")
      try queue.write { db in
        try db.execute(
          sql: """
            INSERT INTO runs (started_at, status, playbook, playbook_sha256, trigger, started_by, machine, pid,
              process_start) VALUES (1800000000, 'succeeded', 'old.yml', '00', 'manual', 'ops@box', 'box', 1, '1')
            """)
      }
    }
    let history = try History(path: path)
    let run = try #require(try history.run(id: 1))
    #expect(run.playbook == "old.yml" && run.keyFingerprint == nil)
    #expect(try history.plays(runID: 1).isEmpty)
    try history.setKeyFingerprint(runID: 1, "SHA256:abc")
    try history.record(
      runID: 1,
      play: PlayRecord(position: 0, name: "patch", outcome: .completed, keyTTL: 60, concurrency: 10))
    #expect(try history.run(id: 1)?.keyFingerprint == "SHA256:abc")
    #expect(try history.plays(runID: 1).map(\.name) == ["patch"])
  }

  @Test func recordsRunsHostsAndTasks() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try open()
    let id = try history.begin(newRun(3, job: "nightly"))
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    try history.record(
      runID: id,
      hosts: [
        HostRecord(
          play: "patch", host: "web-1", address: "10.0.0.1:22", user: "ops", status: .ok,
          pushes: [t0], authenticatedAt: t0.addingTimeInterval(0.25), pushToAuthMilliseconds: 250,
          tasks: [TaskRecord(name: "update", status: .ok, exitStatus: 0, attempts: 1, stdoutTail: "done\n")]),
        HostRecord(
          play: "patch", host: "web-2", address: "10.0.0.2:22", user: "ops", status: .failed,
          message: "task 'update' failed",
          tasks: [
            TaskRecord(
              name: "update", status: .failed, reason: "exit status 2", exitStatus: 2, attempts: 3,
              stderrTail: "E: lock\n"),
            TaskRecord(name: "restart", status: .skipped, reason: "an earlier task failed"),
          ]),
        HostRecord(play: "patch", host: "web-3", address: "10.0.0.3:22", user: "ops", status: .unreachable),
      ])
    try history.finish(id: id, status: .failed, exitCode: 1, message: nil)
    let run = try #require(try history.run(id: id))
    #expect(run.status == .failed)
    #expect(run.exitCode == 1)
    #expect(run.hostsTotal == 3)
    #expect(run.hostsOK == 1)
    #expect(run.hostsFailed == 2)
    #expect(run.job == "nightly")
    #expect(run.trigger == .schedule)
    #expect(run.extraVarNames == ["version"])
    let hosts = try history.hosts(runID: id)
    #expect(hosts.map(\.host) == ["web-1", "web-2", "web-3"])
    #expect(hosts[0].pushes == [t0])
    #expect(hosts[0].pushToAuthMilliseconds == 250)
    #expect(hosts[1].tasks.map(\.status) == [.failed, .skipped])
    #expect(hosts[1].tasks[0].attempts == 3)
    #expect(hosts[1].tasks[0].stderrTail == "E: lock\n")
    #expect(try history.hosts(runID: id, host: "web-2").count == 1)
    #expect(try history.runs(job: "nightly").map(\.id) == [id])
    #expect(try history.runs(job: "other").isEmpty)
    #expect(try history.runs(since: Date().addingTimeInterval(60)).isEmpty)
  }

  @Test func runsWhoseProcessDiedAreMarkedInterrupted() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try open()
    let (doomed, exit) = try process()
    let crashed = try history.begin(newRun(process: doomed))
    #expect(
      try history.tryLock(runID: crashed, hosts: [HostLockKey(name: "a", address: "10.0.0.1", port: 22)])
        == nil)
    #expect(try history.locks().count == 1)
    exit()
    #expect(!doomed.isAlive)
    let alive = try history.begin(newRun())
    // A reused PID with another start time is not the run's process either.
    let reused = try history.begin(newRun(process: ProcessIdentity(pid: getpid(), start: "1")))
    let marked = try history.sweepInterrupted()
    #expect(Set(marked) == [crashed, reused])
    #expect(try history.run(id: crashed)?.status == .interrupted)
    #expect(try history.run(id: crashed)?.message?.contains("stopped without finishing") == true)
    #expect(try history.run(id: alive)?.status == .running)
    #expect(try history.locks().isEmpty)
  }

  @Test func hostLocksAreAllOrNoneAndFreedWhenTheRunEnds() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try open()
    let a = try history.begin(newRun(job: "nightly"))
    let b = try history.begin(newRun())
    let h1 = HostLockKey(name: "web-1", address: "10.0.0.1", port: 22)
    let h2 = HostLockKey(name: "web-2", address: "10.0.0.2", port: nil)
    let h3 = HostLockKey(name: "web-3", address: "10.0.0.3", port: 22)
    #expect(try history.tryLock(runID: a, hosts: [h1, h2]) == nil)
    // The same machine under another name is the same lock.
    let alias = HostLockKey(name: "db-primary", address: "10.0.0.2", port: 22)
    let holder = try #require(try history.tryLock(runID: b, hosts: [h3, alias]))
    #expect(holder.runID == a)
    #expect(holder.host == "db-primary")
    #expect(holder.job == "nightly")
    #expect(try history.locks().map(\.host) == ["web-1", "web-2"])  // web-3 was not taken
    // Refuse at once.
    let started = Date()
    #expect(try await history.lock(runID: b, hosts: [h3, alias], wait: 0) != nil)
    #expect(Date().timeIntervalSince(started) < 1)
    // Wait: run a finishes once b starts waiting, then b gets every host.
    var waitedFor: Int64?
    #expect(
      try await history.lock(
        runID: b, hosts: [h3, alias], wait: 10, poll: .milliseconds(50),
        onWait: {
          waitedFor = $0.runID
          try? history.finish(id: a, status: .succeeded, exitCode: 0, message: nil)
        }) == nil)
    #expect(waitedFor == a)
    #expect(Set(try history.locks().map(\.runID)) == [b])
    try history.finish(id: b, status: .succeeded, exitCode: 0, message: nil)
    #expect(try history.locks().isEmpty)
  }

  @Test func aWaitForHostLocksEndsWhenItsTaskIsCancelled() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try open()
    let a = try history.begin(newRun())
    let b = try history.begin(newRun())
    let host = HostLockKey(name: "web-1", address: "10.0.0.1", port: 22)
    #expect(try history.tryLock(runID: a, hosts: [host]) == nil)
    let (waiting, waits) = AsyncStream<LockHolder>.makeStream()
    let wait = Task {
      try await history.lock(runID: b, hosts: [host], wait: 600, onWait: { waits.yield($0) })
    }
    var told: [Int64] = []
    for await holder in waiting {
      told.append(holder.runID)
      break
    }
    wait.cancel()
    // The wait ends long before its 10 minutes, naming the holder; b took nothing.
    #expect(try await wait.value?.runID == a)
    #expect(told == [a])
    #expect(try history.locks().map(\.runID) == [a])
  }

  @Test func aWaitForHostLocksEndsAtItsTimeoutNamingTheHolder() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try open()
    let a = try history.begin(newRun(job: "nightly"))
    let b = try history.begin(newRun())
    let host = HostLockKey(name: "web-1", address: "10.0.0.1", port: 22)
    #expect(try history.tryLock(runID: a, hosts: [host]) == nil)
    var told = 0
    let holder = try await history.lock(
      runID: b, hosts: [host], wait: 0.2, poll: .milliseconds(20), onWait: { _ in told += 1 })
    #expect(holder?.runID == a && holder?.job == "nightly" && holder?.trigger == .schedule)
    #expect(holder?.description == "run \(a) (job 'nightly', schedule, started by \(NewRun.currentUser))")
    #expect(told == 1)  // the waiting message is printed once
  }

  /// A history written by the code before records were GRDB Codable records (its own SQL, kept
  /// here verbatim) opens and reads the same.
  @Test func aHistoryWrittenWithTheHandWrittenSQLReadsTheSame() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/before.sqlite"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    do {
      let queue = try DatabaseQueue(path: path)
      try History.migrator.migrate(queue)
      try queue.write { db in
        try db.execute(
          sql: """
            INSERT INTO runs (started_at, status, playbook, playbook_sha256, inventory, policy, limit_selector,
              extra_var_names, job, trigger, started_by, machine, pid, process_start, rerun_of, scheduled_for,
              hosts_total)
            VALUES (1800000000.5, 'running', '/p.yml', 'ab', '/i.yml', NULL, 'web-*', 'version,token', 'nightly',
              'catch-up', 'ops@box', 'elsewhere', 1, '1', NULL, 1799999990, 2);
            INSERT INTO run_hosts (run_id, play, host, address, user, status, message, pushes,
              authenticated_at, push_to_auth_ms, started_at, finished_at, reconnects)
            VALUES (1, 'patch', 'web-1', '10.0.0.1:22', 'ops', 'timed out', 'task ''update'' timed out',
              '1800000001.25,1800000031.5', 1800000031.75, 250, 1800000001.0, 1800000062.0, 1),
              (1, 'patch', 'web-2', '', 'ops', 'not started', NULL, '', NULL, NULL, NULL, NULL, 0);
            INSERT INTO run_tasks (run_id, play, host, position, task, status, reason, exit_status, attempts,
              started_at, finished_at, stdout_tail, stderr_tail)
            VALUES (1, 'patch', 'web-1', 0, 'update', 'timed out', NULL, NULL, 1, 1800000032.0, 1800000062.0,
              '…tail', ''),
              (1, 'patch', 'web-1', 1, 'restart', 'pending', NULL, NULL, 0, NULL, NULL, NULL, NULL);
            INSERT INTO run_plays (run_id, position, name, outcome, reason, key_ttl, concurrency)
            VALUES (1, 0, 'patch', 'timed out', NULL, 60.0, 10);
            UPDATE runs SET status = 'aborted', exit_code = 4, message = 'run timed out',
              finished_at = 1800000062.0, key_fingerprint = 'SHA256:abc' WHERE id = 1;
            INSERT INTO notifications (run_id, job, kind, target, outcome, attempts, error, at)
            VALUES (1, 'nightly', 'command', 'notify.sh', 'sent', 1, NULL, 1800000063.0);
            INSERT INTO host_locks (host_key, host, run_id, acquired_at) VALUES ('10.0.0.9:22', 'db', 1, 1800000000);
            """)
      }
    }
    let history = try History(path: path)
    let run = try #require(try history.run(id: 1))
    #expect(run.startedAt == Date(timeIntervalSince1970: 1_800_000_000.5))
    #expect(run.finishedAt == Date(timeIntervalSince1970: 1_800_000_062))
    #expect(run.status == .aborted && run.exitCode == 4 && run.message == "run timed out")
    #expect(run.playbook == "/p.yml" && run.playbookSHA256 == "ab" && run.inventory == "/i.yml")
    #expect(run.policy == nil && run.limit == "web-*" && run.extraVarNames == ["version", "token"])
    #expect(run.job == "nightly" && run.trigger == .catchUp && run.startedBy == "ops@box" && run.pid == 1)
    #expect(run.rerunOf == nil && run.scheduledFor == Date(timeIntervalSince1970: 1_799_999_990))
    #expect(run.hostsTotal == 2 && run.keyFingerprint == "SHA256:abc")
    let hosts = try history.hosts(runID: 1)
    #expect(hosts.map(\.host) == ["web-1", "web-2"])
    #expect(hosts.map(\.status) == [.timedOut, .notStarted])
    #expect(hosts[0].message == "task 'update' timed out" && hosts[0].reconnects == 1)
    #expect(
      hosts[0].pushes == [
        Date(timeIntervalSince1970: 1_800_000_001.25), Date(timeIntervalSince1970: 1_800_000_031.5),
      ])
    #expect(hosts[0].authenticatedAt == Date(timeIntervalSince1970: 1_800_000_031.75))
    #expect(hosts[0].pushToAuthMilliseconds == 250)
    #expect(hosts[1].pushes.isEmpty && hosts[1].startedAt == nil && hosts[1].tasks.isEmpty)
    #expect(hosts[0].tasks.map(\.name) == ["update", "restart"])
    #expect(hosts[0].tasks.map(\.status) == [.timedOut, .pending])
    #expect(hosts[0].tasks[0].stdoutTail == "…tail" && hosts[0].tasks[0].exitStatus == nil)
    #expect(hosts[0].tasks[1].startedAt == nil && hosts[0].tasks[1].stdoutTail == nil)
    let plays = try history.plays(runID: 1)
    #expect(plays.map(\.outcome) == [.timedOut] && plays.first?.concurrency == 10)
    let notifications = try history.notifications(runID: 1)
    #expect(notifications.map(\.kind) == [.command] && notifications.map(\.outcome) == [.sent])
    #expect(notifications.first?.at == Date(timeIntervalSince1970: 1_800_000_063))
    // What the new code writes, the old SQL reads back in the same columns.
    try history.record(runID: 1, hosts: [hosts[0]])
    let columns = try history.pool!.read { db in
      try Row.fetchOne(
        db, sql: "SELECT status, pushes, started_at FROM run_hosts WHERE run_id = 1 AND host = 'web-1'")
    }
    #expect(columns?["status"] == "timed out")
    #expect(columns?["pushes"] == "1800000001.25,1800000031.5")
    #expect(columns?["started_at"] == 1_800_000_001.0)
    let tasks = try history.pool!.read { db in
      try String.fetchAll(db, sql: "SELECT status FROM run_tasks WHERE host = 'web-1' ORDER BY position")
    }
    #expect(tasks == ["timed out", "pending"])
    // Counted as the old SQL counted: a timed-out host failed.
    #expect(try history.run(id: 1)?.hostsFailed == 1)
  }

  @Test func twoProcessesWritingAtOnceNeverFail() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let first = try open()
    let second = try open()  // a second connection pool, as another process would have
    let group = DispatchGroup()
    let errors = NSLock()
    nonisolated(unsafe) var failures: [String] = []
    for history in [first, second] {
      for _ in 0..<2 {
        group.enter()
        Thread.detachNewThread {
          defer { group.leave() }
          for _ in 0..<50 {
            do {
              let id = try history.begin(newRun())
              _ = try history.tryLock(
                runID: id, hosts: [HostLockKey(name: "h", address: "10.0.0.9", port: 22)])
              try history.finish(id: id, status: .succeeded, exitCode: 0, message: nil)
            } catch {
              errors.withLock { failures.append("\(error)") }
            }
          }
        }
      }
    }
    group.wait()
    #expect(failures.isEmpty)
    #expect(try first.runs(limit: 1000).count == 200)
  }

  /// Runners started together on a machine with no history yet each open the new file: they take
  /// turns at the migrations, and none fails on a table another one created.
  @Test func manyOpenersOfANewHistoryAllSucceed() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let start = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    let errors = NSLock()
    nonisolated(unsafe) var failures: [String] = []
    nonisolated(unsafe) var opened: [History] = []
    for _ in 0..<8 {
      group.enter()
      Thread.detachNewThread {
        defer { group.leave() }
        start.wait()
        do {
          let history = try self.open()
          errors.withLock { opened.append(history) }
        } catch {
          errors.withLock { failures.append("\(error)") }
        }
      }
    }
    for _ in 0..<8 { start.signal() }
    group.wait()
    #expect(failures.isEmpty, "\(failures)")
    #expect(opened.count == 8)
    _ = try opened.first?.begin(newRun())
    #expect(try opened.last?.runs(limit: 10).count == 1)
  }

  @Test func jobStateAndNotifications() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try open()
    #expect(try history.lastFire(job: "nightly") == nil)
    let fire = Date(timeIntervalSince1970: 1_800_000_000)
    try history.setLastFire(job: "nightly", at: fire)
    try history.setLastFire(job: "nightly", at: fire.addingTimeInterval(86400))
    #expect(try history.lastFire(job: "nightly") == fire.addingTimeInterval(86400))
    let id = try history.recordUnstarted(
      newRun(job: "nightly"), status: .skipped, exitCode: nil, message: "the previous run was still going")
    #expect(try history.run(id: id)?.status == .skipped)
    #expect(try history.run(id: id)?.finishedAt != nil)
    try history.recordNotification(
      NotificationRecord(
        runID: id, job: "nightly", kind: .webhook, target: "https://hooks.example.com", outcome: .failed,
        attempts: 4, error: "HTTP 500"))
    let sent = try history.notifications(runID: id)
    #expect(sent.map(\.outcome) == [.failed])
    #expect(sent.first?.attempts == 4)
  }

  @Test func defaultLocationFollowsXDG() {
    #expect(History.defaultPath(environment: ["SIXTY_HISTORY": "/x/h.db", "HOME": "/home/a"]) == "/x/h.db")
    #expect(
      History.defaultPath(environment: ["XDG_STATE_HOME": "/state", "HOME": "/home/a"])
        == "/state/sixty/history.sqlite")
    #expect(
      History.defaultPath(environment: ["HOME": "/home/a"]) == "/home/a/.local/state/sixty/history.sqlite")
    // A relative XDG_STATE_HOME is invalid per the spec and ignored.
    #expect(
      History.defaultPath(environment: ["XDG_STATE_HOME": "state", "HOME": "/home/a"])
        == "/home/a/.local/state/sixty/history.sqlite")
  }

  @Test func tailsKeepTheEndOnACharacterBoundary() {
    #expect(TaskRecord.tail("short") == "short")
    let long = String(repeating: "é", count: 3000)  // 6000 bytes
    let tail = TaskRecord.tail(long, limit: 101)
    #expect(tail.hasPrefix("…é"))
    #expect(tail.utf8.count <= 101 + "…".utf8.count)
  }
}
