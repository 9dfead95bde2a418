import Foundation
import GRDB

/// The run history: every run (manual or scheduled) with its hosts and tasks, the host locks that
/// keep two runs off the same host, the daemon's per-job state and the notifications sent.
///
/// One SQLite file in WAL mode, shared safely by any number of `sixty` processes (writes take an
/// immediate transaction and wait up to `busyTimeout` for each other). The schema is created and
/// upgraded by numbered migrations.
public final class History: Sendable {
  public let path: String
  let pool: DatabasePool

  /// How long a writer waits for another process's transaction.
  public static let busyTimeout: TimeInterval = 15

  /// `$SIXTY_HISTORY`, else `$XDG_STATE_HOME/sixty/history.sqlite`, else
  /// `~/.local/state/sixty/history.sqlite`.
  public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment)
    -> String
  {
    if let path = environment["SIXTY_HISTORY"], !path.isEmpty { return path }
    if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") {
      return state + "/sixty/history.sqlite"
    }
    let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    return home + "/.local/state/sixty/history.sqlite"
  }

  /// The known_hosts file that `accept-new` keeps across runs: `$SIXTY_KNOWN_HOSTS`, else
  /// beside the history (`defaultPath`'s folder).
  public static func defaultKnownHostsFile(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> String {
    if let path = environment["SIXTY_KNOWN_HOSTS"], !path.isEmpty { return path }
    return URL(fileURLWithPath: defaultPath(environment: environment)).deletingLastPathComponent()
      .appendingPathComponent("known_hosts").path
  }

  /// Opens (creating if needed) the history at `path`, applying pending migrations.
  /// - Throws: `HistoryError` naming the file and what went wrong.
  public init(path: String) throws(HistoryError) {
    self.path = path
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    do {
      if !FileManager.default.fileExists(atPath: directory) {
        try FileManager.default.createDirectory(
          atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      }
    } catch {
      throw HistoryError("cannot create the history directory \(directory): \(error.localizedDescription)")
    }
    var config = Configuration()
    config.busyMode = .timeout(History.busyTimeout)
    config.label = "sixty-history"
    let created = !FileManager.default.fileExists(atPath: path)
    do {
      pool = try DatabasePool(path: path, configuration: config)
      if created { chmod(path, 0o600) }
      try History.migrator.migrate(pool)
    } catch {
      throw HistoryError("cannot open the run history \(path): \(History.describe(error))")
    }
  }

  static func describe(_ error: any Error) -> String {
    if let error = error as? DatabaseError {
      return error.message ?? "\(error.resultCode)"
    }
    return "\(error)"
  }

  static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1: runs, hosts, tasks, locks, jobs, notifications") { db in
      try db.execute(
        sql: """
          CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL,
            exit_code INTEGER,
            message TEXT,
            playbook TEXT NOT NULL,
            playbook_sha256 TEXT NOT NULL,
            inventory TEXT,
            policy TEXT,
            limit_selector TEXT,
            extra_var_names TEXT NOT NULL DEFAULT '',
            job TEXT,
            trigger TEXT NOT NULL,
            started_by TEXT NOT NULL,
            machine TEXT NOT NULL,
            pid INTEGER NOT NULL,
            process_start TEXT NOT NULL,
            rerun_of INTEGER REFERENCES runs(id),
            scheduled_for REAL,
            hosts_total INTEGER NOT NULL DEFAULT 0,
            hosts_ok INTEGER NOT NULL DEFAULT 0,
            hosts_failed INTEGER NOT NULL DEFAULT 0
          );
          CREATE INDEX runs_job ON runs(job, started_at);
          CREATE INDEX runs_started ON runs(started_at);
          CREATE INDEX runs_status ON runs(status);
          CREATE TABLE run_hosts (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            play TEXT NOT NULL,
            host TEXT NOT NULL,
            address TEXT NOT NULL,
            user TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT,
            pushes TEXT NOT NULL DEFAULT '',
            authenticated_at REAL,
            push_to_auth_ms INTEGER,
            started_at REAL,
            finished_at REAL,
            reconnects INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, play, host)
          );
          CREATE TABLE run_tasks (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            play TEXT NOT NULL,
            host TEXT NOT NULL,
            position INTEGER NOT NULL,
            task TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT,
            exit_status INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            started_at REAL,
            finished_at REAL,
            stdout_tail TEXT,
            stderr_tail TEXT,
            PRIMARY KEY (run_id, play, host, position)
          );
          CREATE TABLE host_locks (
            host_key TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            acquired_at REAL NOT NULL
          );
          CREATE INDEX host_locks_run ON host_locks(run_id);
          CREATE TABLE job_state (
            job TEXT PRIMARY KEY,
            last_fire REAL NOT NULL,
            updated_at REAL NOT NULL
          );
          CREATE TABLE notifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
            job TEXT,
            kind TEXT NOT NULL,
            target TEXT NOT NULL,
            outcome TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            error TEXT,
            at REAL NOT NULL
          );
          """)
    }
    migrator.registerMigration("v2: plays and the run's key fingerprint, for reports") { db in
      try db.execute(
        sql: """
          CREATE TABLE run_plays (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT,
            key_ttl REAL NOT NULL,
            concurrency INTEGER NOT NULL,
            PRIMARY KEY (run_id, position)
          );
          ALTER TABLE runs ADD COLUMN key_fingerprint TEXT;
          """)
    }
    return migrator
  }

  /// The identity of this process, precise enough that a reused PID is not mistaken for it.
  public static let currentProcess = ProcessIdentity.current

  // MARK: - Runs

  /// Marks every `running` run whose process is gone (on this machine) as `interrupted`, and
  /// frees its host locks.
  /// - Returns: the ids of the runs marked.
  @discardableResult
  public func sweepInterrupted(now: Date = Date()) throws(HistoryError) -> [Int64] {
    try write { db in try Self.sweep(db, now: now) }
  }

  static func sweep(_ db: Database, now: Date) throws -> [Int64] {
    let machine = ProcessIdentity.machine
    var marked: [Int64] = []
    let rows = try Row.fetchAll(
      db, sql: "SELECT id, pid, process_start FROM runs WHERE status = 'running' AND machine = ?",
      arguments: [machine])
    for row in rows {
      let identity = ProcessIdentity(pid: row["pid"], start: row["process_start"])
      if !identity.isAlive {
        let id: Int64 = row["id"]
        marked.append(id)
        try db.execute(
          sql: """
            UPDATE runs SET status = 'interrupted', finished_at = COALESCE(finished_at, ?),
              message = COALESCE(message, 'the process running it stopped without finishing (crash, kill or power loss)')
            WHERE id = ?
            """, arguments: [now.timeIntervalSince1970, id])
        try db.execute(sql: "DELETE FROM host_locks WHERE run_id = ?", arguments: [id])
      }
    }
    // Locks of runs that are no longer running (finished without releasing) are free as well.
    try db.execute(
      sql: "DELETE FROM host_locks WHERE run_id IN (SELECT id FROM runs WHERE status != 'running')")
    return marked
  }

  /// Records a new run as `running` and returns its id.
  public func begin(_ run: NewRun) throws(HistoryError) -> Int64 {
    try write { db in
      try db.execute(
        sql: """
          INSERT INTO runs (started_at, status, playbook, playbook_sha256, inventory, policy, limit_selector,
            extra_var_names, job, trigger, started_by, machine, pid, process_start, rerun_of, scheduled_for,
            hosts_total)
          VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          """,
        arguments: [
          run.startedAt.timeIntervalSince1970, run.playbook, run.playbookSHA256, run.inventory, run.policy,
          run.limit, run.extraVarNames.joined(separator: ","), run.job, run.trigger.rawValue, run.startedBy,
          ProcessIdentity.machine, Int(run.process.pid), run.process.start, run.rerunOf,
          run.scheduledFor?.timeIntervalSince1970, run.hostsTotal,
        ])
      return db.lastInsertedRowID
    }
  }

  /// Records a run that never started (bad input, refused, skipped because of overlap) in one step.
  @discardableResult
  public func recordUnstarted(_ run: NewRun, status: RunStatus, exitCode: Int32?, message: String)
    throws(HistoryError) -> Int64
  {
    let id = try begin(run)
    try finish(id: id, status: status, exitCode: exitCode, message: message)
    return id
  }

  /// Stores (or replaces) the results of hosts of a run.
  public func record(runID: Int64, hosts: [HostRecord]) throws(HistoryError) {
    try write { db in
      for host in hosts {
        try db.execute(
          sql: """
            INSERT OR REPLACE INTO run_hosts (run_id, play, host, address, user, status, message, pushes,
              authenticated_at, push_to_auth_ms, started_at, finished_at, reconnects)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
          arguments: [
            runID, host.play, host.host, host.address, host.user, host.status, host.message,
            host.pushes.map { String($0.timeIntervalSince1970) }.joined(separator: ","),
            host.authenticatedAt?.timeIntervalSince1970, host.pushToAuthMilliseconds,
            host.startedAt?.timeIntervalSince1970, host.finishedAt?.timeIntervalSince1970, host.reconnects,
          ])
        try db.execute(
          sql: "DELETE FROM run_tasks WHERE run_id = ? AND play = ? AND host = ?",
          arguments: [runID, host.play, host.host])
        for (position, task) in host.tasks.enumerated() {
          try db.execute(
            sql: """
              INSERT INTO run_tasks (run_id, play, host, position, task, status, reason, exit_status, attempts,
                started_at, finished_at, stdout_tail, stderr_tail)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
              """,
            arguments: [
              runID, host.play, host.host, position, task.name, task.status, task.reason,
              task.exitStatus.map { Int($0) }, task.attempts, task.startedAt?.timeIntervalSince1970,
              task.finishedAt?.timeIntervalSince1970, task.stdoutTail, task.stderrTail,
            ])
        }
      }
      try Self.updateCounts(db, runID: runID)
    }
  }

  /// Stores (or replaces) how a play of a run ended.
  public func record(runID: Int64, play: PlayRecord) throws(HistoryError) {
    try write { db in
      try db.execute(
        sql: """
          INSERT OR REPLACE INTO run_plays (run_id, position, name, outcome, reason, key_ttl, concurrency)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          """,
        arguments: [
          runID, play.position, play.name, play.outcome, play.reason, play.keyTTL, play.concurrency,
        ])
    }
  }

  /// The plays of a run, in order (none for runs recorded before plays were).
  public func plays(runID: Int64) throws(HistoryError) -> [PlayRecord] {
    try read { db in
      try Row.fetchAll(
        db, sql: "SELECT * FROM run_plays WHERE run_id = ? ORDER BY position", arguments: [runID]
      ).map { PlayRecord(row: $0) }
    }
  }

  /// The fingerprint of the public key the run pushed (never the key itself).
  public func setKeyFingerprint(runID: Int64, _ fingerprint: String) throws(HistoryError) {
    try write { db in
      try db.execute(
        sql: "UPDATE runs SET key_fingerprint = ? WHERE id = ?", arguments: [fingerprint, runID])
    }
  }

  static func updateCounts(_ db: Database, runID: Int64) throws {
    try db.execute(
      sql: """
        UPDATE runs SET
          hosts_ok = (SELECT COUNT(DISTINCT host) FROM run_hosts WHERE run_id = ?1 AND status = 'ok'
            AND host NOT IN (SELECT host FROM run_hosts WHERE run_id = ?1 AND status != 'ok')),
          hosts_failed = (SELECT COUNT(DISTINCT host) FROM run_hosts WHERE run_id = ?1
            AND status IN ('failed', 'unreachable', 'timed out'))
        WHERE id = ?1
        """, arguments: [runID])
  }

  /// Marks a run finished and frees its host locks.
  public func finish(id: Int64, status: RunStatus, exitCode: Int32?, message: String?, at: Date = Date())
    throws(HistoryError)
  {
    try write { db in
      try db.execute(
        sql: "UPDATE runs SET status = ?, exit_code = ?, message = ?, finished_at = ? WHERE id = ?",
        arguments: [status.rawValue, exitCode.map { Int($0) }, message, at.timeIntervalSince1970, id])
      try db.execute(sql: "DELETE FROM host_locks WHERE run_id = ?", arguments: [id])
    }
  }

  /// Runs, newest first.
  public func runs(job: String? = nil, since: Date? = nil, limit: Int = 50) throws(HistoryError)
    -> [RunRecord]
  {
    try read { db in
      var sql = "SELECT * FROM runs WHERE 1 = 1"
      var arguments: StatementArguments = []
      if let job {
        sql += " AND job = ?"
        arguments += [job]
      }
      if let since {
        sql += " AND started_at >= ?"
        arguments += [since.timeIntervalSince1970]
      }
      sql += " ORDER BY id DESC LIMIT ?"
      arguments += [limit]
      return try Row.fetchAll(db, sql: sql, arguments: arguments).map { RunRecord(row: $0) }
    }
  }

  public func run(id: Int64) throws(HistoryError) -> RunRecord? {
    try read { db in
      try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [id]).map { RunRecord(row: $0) }
    }
  }

  /// The newest run started by process `pid` for `job`, if any.
  public func latestRun(job: String, pid: Int32, since: Date) throws(HistoryError) -> RunRecord? {
    try read { db in
      try Row.fetchOne(
        db, sql: "SELECT * FROM runs WHERE job = ? AND pid = ? AND started_at >= ? ORDER BY id DESC LIMIT 1",
        arguments: [job, Int(pid), since.timeIntervalSince1970 - 1]
      ).map { RunRecord(row: $0) }
    }
  }

  /// The hosts of a run (optionally one host), each with its tasks, in play and host order.
  public func hosts(runID: Int64, host: String? = nil) throws(HistoryError) -> [HostRecord] {
    try read { db in
      var sql = "SELECT rowid, * FROM run_hosts WHERE run_id = ?"
      var arguments: StatementArguments = [runID]
      if let host {
        sql += " AND host = ?"
        arguments += [host]
      }
      sql += " ORDER BY rowid"
      var records = try Row.fetchAll(db, sql: sql, arguments: arguments).map { HostRecord(row: $0) }
      for index in records.indices {
        records[index].tasks = try Row.fetchAll(
          db, sql: "SELECT * FROM run_tasks WHERE run_id = ? AND play = ? AND host = ? ORDER BY position",
          arguments: [runID, records[index].play, records[index].host]
        ).map { TaskRecord(row: $0) }
      }
      return records
    }
  }

  // MARK: - Host locks

  /// Takes the locks on `hosts` for run `runID`, all or none.
  /// - Returns: nil when taken, else who holds the first busy host.
  public func tryLock(runID: Int64, hosts: [HostLockKey], now: Date = Date()) throws(HistoryError)
    -> LockHolder?
  {
    try write { db in
      _ = try Self.sweep(db, now: now)
      for host in hosts {
        if let row = try Row.fetchOne(
          db,
          sql: """
            SELECT l.host, l.run_id, r.job, r.started_by, r.trigger FROM host_locks l JOIN runs r ON r.id = l.run_id
            WHERE l.host_key = ? AND l.run_id != ?
            """, arguments: [host.key, runID])
        {
          return LockHolder(
            host: host.name, runID: row["run_id"], job: row["job"], startedBy: row["started_by"],
            trigger: row["trigger"])
        }
      }
      for host in hosts {
        try db.execute(
          sql: "INSERT OR REPLACE INTO host_locks (host_key, host, run_id, acquired_at) VALUES (?, ?, ?, ?)",
          arguments: [host.key, host.name, runID, now.timeIntervalSince1970])
      }
      return nil
    }
  }

  /// Takes the locks, waiting up to `wait` seconds (0: refuse at once) for other runs to finish.
  /// `onWait` is called once with the first holder when waiting starts.
  public func lock(
    runID: Int64, hosts: [HostLockKey], wait: TimeInterval, poll: TimeInterval = 0.5,
    cancelled: () -> Bool = { false }, onWait: (LockHolder) -> Void = { _ in }
  ) throws(HistoryError) -> LockHolder? {
    let deadline = Date().addingTimeInterval(wait)
    var told = false
    while true {
      guard let holder = try tryLock(runID: runID, hosts: hosts) else { return nil }
      if Date() >= deadline || cancelled() { return holder }
      if !told {
        onWait(holder)
        told = true
      }
      Thread.sleep(forTimeInterval: min(poll, max(0.01, deadline.timeIntervalSinceNow)))
    }
  }

  public func locks() throws(HistoryError) -> [(host: String, runID: Int64)] {
    try read { db in
      try Row.fetchAll(db, sql: "SELECT host, run_id FROM host_locks ORDER BY host").map {
        (host: $0["host"], runID: $0["run_id"])
      }
    }
  }

  // MARK: - Jobs and notifications

  /// The scheduled time of the last fire the daemon handled for `job`.
  public func lastFire(job: String) throws(HistoryError) -> Date? {
    try read { db in
      try Double.fetchOne(db, sql: "SELECT last_fire FROM job_state WHERE job = ?", arguments: [job])
        .map { Date(timeIntervalSince1970: $0) }
    }
  }

  public func setLastFire(job: String, at fire: Date) throws(HistoryError) {
    try write { db in
      try db.execute(
        sql: "INSERT OR REPLACE INTO job_state (job, last_fire, updated_at) VALUES (?, ?, ?)",
        arguments: [job, fire.timeIntervalSince1970, Date().timeIntervalSince1970])
    }
  }

  public func recordNotification(_ record: NotificationRecord) throws(HistoryError) {
    try write { db in
      try db.execute(
        sql: """
          INSERT INTO notifications (run_id, job, kind, target, outcome, attempts, error, at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?)
          """,
        arguments: [
          record.runID, record.job, record.kind, record.target, record.outcome, record.attempts, record.error,
          record.at.timeIntervalSince1970,
        ])
    }
  }

  public func notifications(runID: Int64) throws(HistoryError) -> [NotificationRecord] {
    try read { db in
      try Row.fetchAll(
        db, sql: "SELECT * FROM notifications WHERE run_id = ? ORDER BY id", arguments: [runID]
      )
      .map {
        NotificationRecord(
          runID: $0["run_id"], job: $0["job"], kind: $0["kind"], target: $0["target"], outcome: $0["outcome"],
          attempts: $0["attempts"], error: $0["error"], at: Date(timeIntervalSince1970: $0["at"]))
      }
    }
  }

  // MARK: -

  func write<T>(_ body: (Database) throws -> T) throws(HistoryError) -> T {
    do {
      return try pool.writeWithoutTransaction { db in
        var result: T?
        try db.inTransaction(.immediate) {
          result = try body(db)
          return .commit
        }
        return result!
      }
    } catch {
      throw HistoryError("cannot write the run history \(path): \(History.describe(error))")
    }
  }

  func read<T>(_ body: (Database) throws -> T) throws(HistoryError) -> T {
    do {
      return try pool.read(body)
    } catch {
      throw HistoryError("cannot read the run history \(path): \(History.describe(error))")
    }
  }
}

public struct HistoryError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
