import Foundation
import GRDB
import SixtyPostgres

/// The run history: every run (manual or scheduled) with its hosts and tasks, the host locks that
/// keep two runs off the same host, the daemon's per-job state and the notifications sent.
///
/// One SQLite file in WAL mode, shared safely by any number of `sixty` processes (writes take an
/// immediate transaction and wait up to `busyTimeout` for each other). The schema is created and
/// upgraded by numbered migrations.
public final class History: Sendable {
  /// The file, or the database URL without its password.
  public let path: String
  /// What the history was opened with (for a process that opens it again; never printed: a
  /// database URL may hold a password).
  public let reopenPath: String
  let pool: DatabasePool?
  /// Set when the history is a PostgreSQL database (`postgresql://…`).
  let postgres: PostgresHistory?

  /// Whether runners on other machines share this history (PostgreSQL): runs then send heartbeats.
  public var isShared: Bool { postgres != nil }

  /// Whether the history at `path` is a shared one (a `postgresql://` URL).
  public static func isShared(path: String) -> Bool { PostgresLocation.isURL(path) }

  /// How long a shared history waits after a run's last heartbeat before marking it interrupted:
  /// `$SIXTY_RUN_STALE_AFTER` seconds (at least 2), else 30.
  public static func staleAfter(environment: [String: String] = ProcessInfo.processInfo.environment) -> Double
  {
    guard let text = environment["SIXTY_RUN_STALE_AFTER"], let seconds = Double(text), seconds >= 2,
      seconds <= 3600
    else { return 30 }
    return seconds
  }

  /// How often a run's heartbeat is sent: six times within the stale period.
  public var heartbeatInterval: Double { (postgres?.staleAfter ?? 30) / 6 }

  /// How long a writer waits for another process's transaction.
  public static let busyTimeout: TimeInterval = 15

  /// `$SIXTY_HISTORY`, else `$XDG_STATE_HOME/sixty/history.sqlite`, else
  /// `~/.local/state/sixty/history.sqlite`.
  public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment)
    -> String
  {
    if let path = environment["SIXTY_HISTORY"], !path.isEmpty { return path }
    return stateDirectory(environment: environment) + "/history.sqlite"
  }

  /// `$XDG_STATE_HOME/sixty`, else `~/.local/state/sixty`.
  public static func stateDirectory(environment: [String: String] = ProcessInfo.processInfo.environment)
    -> String
  {
    if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") { return state + "/sixty" }
    let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
    return home + "/.local/state/sixty"
  }

  /// The local folder for files kept beside the history (known hosts, run logs): the history
  /// file's folder, or the state directory when the history is a database.
  public static func localDirectory(
    forHistory path: String, environment: [String: String] = ProcessInfo.processInfo.environment
  )
    -> String
  {
    if PostgresLocation.isURL(path) { return stateDirectory(environment: environment) }
    return URL(fileURLWithPath: path).deletingLastPathComponent().path
  }

  /// The known_hosts file that `accept-new` keeps across runs: `$SIXTY_KNOWN_HOSTS`, else
  /// beside the history file (`defaultPath`'s folder; the state directory for a database).
  public static func defaultKnownHostsFile(
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> String {
    if let path = environment["SIXTY_KNOWN_HOSTS"], !path.isEmpty { return path }
    return localDirectory(forHistory: defaultPath(environment: environment), environment: environment)
      + "/known_hosts"
  }

  /// Opens (creating if needed) the history at `path`, applying pending migrations.
  /// - Throws: `HistoryError` naming the file and what went wrong.
  public init(path: String) throws(HistoryError) {
    reopenPath = path
    if PostgresLocation.isURL(path) {
      let location: PostgresLocation
      do {
        location = try PostgresLocation.parse(path, origin: "the run history")
      } catch {
        throw HistoryError(error.description)
      }
      self.path = location.description
      pool = nil
      postgres = try PostgresHistory(location: location, staleAfter: History.staleAfter())
      return
    }
    postgres = nil
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
    // Processes opening a new history at once would each see no migration applied and apply the
    // first one twice ("table runs already exists"): an exclusive flock on the directory, held
    // while the file is opened and migrated, makes them take turns (milliseconds each).
    let directoryLock = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    defer { if directoryLock >= 0 { close(directoryLock) } }
    if directoryLock >= 0 {
      while flock(directoryLock, LOCK_EX) != 0 && errno == EINTR {}
    }
    let created = !FileManager.default.fileExists(atPath: path)
    do {
      let pool = try DatabasePool(path: path, configuration: config)
      self.pool = pool
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
    migrator.registerMigration("v3: an ad-hoc run's command, for reruns") { db in
      try db.execute(sql: "ALTER TABLE runs ADD COLUMN ad_hoc_command TEXT;")
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
    if let postgres { return try postgres.sweepInterrupted(now: now) }
    return try write { db in try Self.sweep(db, now: now) }
  }

  static func sweep(_ db: Database, now: Date) throws -> [Int64] {
    let machine = ProcessIdentity.machine
    var marked: [Int64] = []
    let rows = try Row.fetchAll(
      db, sql: "SELECT id, pid, process_start FROM runs WHERE status = ? AND machine = ?",
      arguments: [RunStatus.running, machine])
    for row in rows {
      let identity = ProcessIdentity(pid: row["pid"], start: row["process_start"])
      if !identity.isAlive {
        let id: Int64 = row["id"]
        marked.append(id)
        try db.execute(
          sql: """
            UPDATE runs SET status = ?, finished_at = COALESCE(finished_at, ?),
              message = COALESCE(message, 'the process running it stopped without finishing (crash, kill or power loss)')
            WHERE id = ?
            """, arguments: [RunStatus.interrupted, now.timeIntervalSince1970, id])
        try db.execute(sql: "DELETE FROM host_locks WHERE run_id = ?", arguments: [id])
      }
    }
    // Locks of runs that are no longer running (finished without releasing) are free as well.
    try db.execute(
      sql: "DELETE FROM host_locks WHERE run_id IN (SELECT id FROM runs WHERE status != ?)",
      arguments: [RunStatus.running])
    return marked
  }

  /// Tells a shared history that run `runID`'s runner is alive (nothing for a SQLite file, where
  /// the runner's process id says so).
  public func heartbeat(runID: Int64) throws(HistoryError) {
    try postgres?.heartbeat(runID: runID)
  }

  /// Records a new run as `running` and returns its id.
  public func begin(_ run: NewRun) throws(HistoryError) -> Int64 {
    if let postgres { return try postgres.begin(run) }
    return try write { db in
      try RunRow(run).insert(db)
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
    if let postgres { return try postgres.record(runID: runID, hosts: hosts) }
    return try write { db in
      for host in hosts {
        try HostRow(runID: runID, host).insert(db, onConflict: .replace)
        try TaskRow.filter(
          Column("run_id") == runID && Column("play") == host.play && Column("host") == host.host
        ).deleteAll(db)
        for (position, task) in host.tasks.enumerated() {
          try TaskRow(runID: runID, play: host.play, host: host.host, position: position, task).insert(db)
        }
      }
      try Self.updateCounts(db, runID: runID)
    }
  }

  /// Stores (or replaces) how a play of a run ended.
  public func record(runID: Int64, play: PlayRecord) throws(HistoryError) {
    if let postgres { return try postgres.record(runID: runID, play: play) }
    return try write { db in try PlayRow(runID: runID, play).insert(db, onConflict: .replace) }
  }

  /// The plays of a run, in order (none for runs recorded before plays were).
  public func plays(runID: Int64) throws(HistoryError) -> [PlayRecord] {
    if let postgres { return try postgres.plays(runID: runID) }
    return try read { db in
      try PlayRow.filter(Column("run_id") == runID).order(Column("position")).fetchAll(db).map(\.record)
    }
  }

  /// The fingerprint of the public key the run pushed (never the key itself).
  public func setKeyFingerprint(runID: Int64, _ fingerprint: String) throws(HistoryError) {
    if let postgres { return try postgres.setKeyFingerprint(runID: runID, fingerprint) }
    return try write { db in
      try db.execute(
        sql: "UPDATE runs SET key_fingerprint = ? WHERE id = ?", arguments: [fingerprint, runID])
    }
  }

  static func updateCounts(_ db: Database, runID: Int64) throws {
    try db.execute(
      sql: """
        UPDATE runs SET
          hosts_ok = (SELECT COUNT(DISTINCT host) FROM run_hosts WHERE run_id = ?1 AND status = ?2
            AND host NOT IN (SELECT host FROM run_hosts WHERE run_id = ?1 AND status != ?2)),
          hosts_failed = (SELECT COUNT(DISTINCT host) FROM run_hosts WHERE run_id = ?1
            AND status IN (?3, ?4, ?5))
        WHERE id = ?1
        """,
      arguments: [runID, HostStatus.ok, HostStatus.failed, HostStatus.unreachable, HostStatus.timedOut])
  }

  /// Marks a run finished and frees its host locks.
  public func finish(id: Int64, status: RunStatus, exitCode: Int32?, message: String?, at: Date = Date())
    throws(HistoryError)
  {
    if let postgres {
      return try postgres.finish(id: id, status: status, exitCode: exitCode, message: message, at: at)
    }
    return try write { db in
      try db.execute(
        sql: "UPDATE runs SET status = ?, exit_code = ?, message = ?, finished_at = ? WHERE id = ?",
        arguments: [status, exitCode.map { Int($0) }, message, at.timeIntervalSince1970, id])
      try db.execute(sql: "DELETE FROM host_locks WHERE run_id = ?", arguments: [id])
    }
  }

  /// Runs, newest first.
  public func runs(job: String? = nil, since: Date? = nil, limit: Int = 50) throws(HistoryError)
    -> [RunRecord]
  {
    if let postgres {
      var runs = try postgres.runs(job: job, since: since, limit: limit)
      let ended = try postgres.shardsEnded(runIDs: runs.filter { $0.shards != nil }.map(\.id))
      for index in runs.indices { runs[index].shardsEnded = ended[runs[index].id] ?? 0 }
      return runs
    }
    return try read { db in
      var request = RunRow.all()
      if let job { request = request.filter(Column("job") == job) }
      if let since { request = request.filter(Column("started_at") >= since.timeIntervalSince1970) }
      return try request.order(Column("id").desc).limit(limit).fetchAll(db).map(\.record)
    }
  }

  public func run(id: Int64) throws(HistoryError) -> RunRecord? {
    if let postgres {
      var found = try postgres.run(id: id)
      if found?.shards != nil { found?.shardsEnded = try postgres.shardsEnded(runIDs: [id])[id] ?? 0 }
      return found
    }
    return try read { db in try RunRow.fetchOne(db, key: id)?.record }
  }

  /// The newest run started by process `pid` for `job`, if any.
  public func latestRun(job: String, pid: Int32, since: Date) throws(HistoryError) -> RunRecord? {
    if let postgres { return try postgres.latestRun(job: job, pid: pid, since: since) }
    return try read { db in
      try RunRow.filter(
        Column("job") == job && Column("pid") == Int(pid)
          && Column("started_at") >= since.timeIntervalSince1970 - 1
      ).order(Column("id").desc).fetchOne(db)?.record
    }
  }

  /// The hosts of a run (optionally one host), each with its tasks, in play and host order.
  public func hosts(runID: Int64, host: String? = nil) throws(HistoryError) -> [HostRecord] {
    if let postgres { return try postgres.hosts(runID: runID, host: host) }
    return try read { db in
      var request = HostRow.filter(Column("run_id") == runID)
      if let host { request = request.filter(Column("host") == host) }
      return try request.order(Column.rowID).fetchAll(db).map { row in
        let tasks = try TaskRow.filter(
          Column("run_id") == runID && Column("play") == row.play && Column("host") == row.host
        ).order(Column("position")).fetchAll(db)
        return row.record(tasks: tasks.map(\.record))
      }
    }
  }

  // MARK: - Sharded runs

  /// Records shard `join.shard` of the run `join.key` as running: the first shard to arrive
  /// creates the run, later ones join it. Sharded runs need a shared (PostgreSQL) history.
  /// - Throws: `HistoryError` saying why the shard cannot join: another shard count or playbook
  ///   for that key, or that shard number already running or ended.
  public func joinShard(_ run: NewRun, join: ShardJoin) throws(HistoryError) -> Int64 {
    guard let postgres else {
      throw HistoryError(
        "--shard needs a shared history: the run history \(path) is a SQLite file; expected --history postgresql://… (or SIXTY_HISTORY) that every shard uses."
      )
    }
    return try postgres.joinShard(run, join: join)
  }

  /// Tells the history that shard `shard` of run `runID` is alive.
  public func heartbeat(runID: Int64, shard: Int) throws(HistoryError) {
    try postgres?.heartbeat(runID: runID, shard: shard)
  }

  /// Marks shard `shard` of run `id` ended and frees its host locks; the run is final (its status
  /// from every shard's) once every shard has ended.
  public func finish(
    id: Int64, shard: Int, status: RunStatus, exitCode: Int32?, message: String?, at: Date = Date()
  ) throws(HistoryError) {
    guard let postgres else {
      return try finish(id: id, status: status, exitCode: exitCode, message: message, at: at)
    }
    try postgres.finish(id: id, shard: shard, status: status, exitCode: exitCode, message: message, at: at)
  }

  /// The shards of a run (none for a run that is not sharded).
  public func shards(runID: Int64) throws(HistoryError) -> [ShardRecord] {
    try postgres?.shards(runID: runID) ?? []
  }

  /// The run whose key (`--run-id`, or derived) is `key`.
  public func run(key: String) throws(HistoryError) -> RunRecord? {
    var found = try postgres?.run(key: key)
    if let id = found?.id { found?.shardsEnded = try postgres?.shardsEnded(runIDs: [id])[id] ?? 0 }
    return found
  }

  /// Counts a failed host of play `play` (its position) for every shard of run `runID`; the
  /// run-wide count after it.
  public func addFailure(runID: Int64, play: Int) throws(HistoryError) -> Int {
    try postgres?.addFailure(runID: runID, play: play) ?? 0
  }

  /// The failed hosts of play `play` of run `runID`, counted over every shard.
  public func failures(runID: Int64, play: Int) throws(HistoryError) -> Int {
    try postgres?.failures(runID: runID, play: play) ?? 0
  }

  // MARK: - Host locks

  /// Takes the locks on `hosts` for run `runID`, all or none.
  /// - Returns: nil when taken, else who holds the first busy host.
  public func tryLock(runID: Int64, shard: Int? = nil, hosts: [HostLockKey], now: Date = Date())
    throws(HistoryError)
    -> LockHolder?
  {
    if let postgres { return try postgres.tryLock(runID: runID, shard: shard, hosts: hosts, now: now) }
    return try write { db in
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
            trigger: try row.decode(forColumn: "trigger"))
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

  /// Takes the locks, waiting up to `wait` seconds (0: refuse at once) for other runs to finish,
  /// trying again every `poll`. `onWait` is called once with the first holder when waiting starts.
  /// Cancelling the task ends the wait at once.
  /// - Returns: nil when taken, else who holds the first busy host when the wait ended.
  public func lock<C: Clock>(
    runID: Int64, shard: Int? = nil, hosts: [HostLockKey], wait: TimeInterval,
    poll: Duration = .milliseconds(500),
    clock: C = ContinuousClock(), onWait: (LockHolder) -> Void = { _ in }
  ) async throws(HistoryError) -> LockHolder? where C.Duration == Duration {
    let deadline = clock.now.advanced(by: .seconds(wait))
    var told = false
    while true {
      guard let holder = try tryLock(runID: runID, shard: shard, hosts: hosts) else { return nil }
      let left = clock.now.duration(to: deadline)
      if left <= .zero || Task.isCancelled { return holder }
      if !told {
        onWait(holder)
        told = true
      }
      // Cancellation ends the sleep early; the loop then returns the holder.
      try? await clock.sleep(for: min(poll, max(.milliseconds(10), left)))
    }
  }

  public func locks() throws(HistoryError) -> [(host: String, runID: Int64)] {
    if let postgres { return try postgres.locks() }
    return try read { db in
      try Row.fetchAll(db, sql: "SELECT host, run_id FROM host_locks ORDER BY host").map {
        (host: $0["host"], runID: $0["run_id"])
      }
    }
  }

  // MARK: - Jobs and notifications

  /// The scheduled time of the last fire the daemon handled for `job`.
  public func lastFire(job: String) throws(HistoryError) -> Date? {
    if let postgres { return try postgres.lastFire(job: job) }
    return try read { db in
      try Double.fetchOne(db, sql: "SELECT last_fire FROM job_state WHERE job = ?", arguments: [job])
        .map { Date(timeIntervalSince1970: $0) }
    }
  }

  /// Records that `job`'s fire at `fire` was handled; never moves the job's last fire back (several
  /// daemons may record fires of the same job).
  public func setLastFire(job: String, at fire: Date) throws(HistoryError) {
    if let postgres { return try postgres.setLastFire(job: job, at: fire) }
    return try write { db in
      try db.execute(
        sql: """
          INSERT INTO job_state (job, last_fire, updated_at) VALUES (?, ?, ?)
          ON CONFLICT (job) DO UPDATE SET last_fire = MAX(last_fire, excluded.last_fire), updated_at = excluded.updated_at
          """,
        arguments: [job, fire.timeIntervalSince1970, Date().timeIntervalSince1970])
    }
  }

  public func recordNotification(_ record: NotificationRecord) throws(HistoryError) {
    if let postgres { return try postgres.recordNotification(record) }
    return try write { db in try NotificationRow(record).insert(db) }
  }

  public func notifications(runID: Int64) throws(HistoryError) -> [NotificationRecord] {
    if let postgres { return try postgres.notifications(runID: runID) }
    return try read { db in
      try NotificationRow.filter(Column("run_id") == runID).order(Column("id")).fetchAll(db).map(\.record)
    }
  }

  // MARK: -

  func write<T>(_ body: (Database) throws -> T) throws(HistoryError) -> T {
    guard let pool else { throw HistoryError("the run history \(path) is not a SQLite file.") }
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
    guard let pool else { throw HistoryError("the run history \(path) is not a SQLite file.") }
    do {
      return try pool.read(body)
    } catch {
      throw HistoryError("cannot read the run history \(path): \(History.describe(error))")
    }
  }
}

/// What a daemon got when it claimed a fire of a job in a shared history.
public enum FireClaim: Sendable, Equatable {
  /// This daemon runs the fire; `token` fences its lease renewals and its end.
  case claimed(token: Int64)
  /// Another daemon claimed it first.
  case taken(by: String)
  /// This daemon owns the fire, but another fire of the job is still going (on `holder`, under a
  /// live lease): the job's overlap rule decides; the fire is recorded as handled.
  case overlapping(holder: String, scheduled: Date, token: Int64)
}

extension History {
  /// Claims `job`'s fire at `scheduled` for `holder` with a lease of `lease` seconds. A history in a
  /// file has one daemon: every claim is granted.
  public func claimFire(job: String, scheduled: Date, holder: String, lease: Double = 30) throws(HistoryError)
    -> FireClaim
  {
    guard let postgres else { return .claimed(token: 0) }
    return try postgres.claimFire(job: job, scheduled: scheduled, holder: holder, lease: lease)
  }

  /// Extends the leases of the fires this daemon runs; returns the tokens whose lease was lost.
  public func renewFires(tokens: [Int64], lease: Double = 30) throws(HistoryError) -> [Int64] {
    guard let postgres, !tokens.isEmpty else { return [] }
    return try postgres.renewFires(tokens: tokens, lease: lease)
  }

  /// Marks a claimed fire ended (`done`, `failed to start`, …).
  public func endFire(token: Int64, state: String) throws(HistoryError) {
    guard let postgres else { return }
    try postgres.endFire(token: token, state: state)
  }
}

public struct HistoryError: Error, Sendable, CustomStringConvertible {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}
