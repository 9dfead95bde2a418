import Foundation
import PostgresNIO
import SixtyPostgres

/// The run history in PostgreSQL, shared by runners and jobs daemons on any number of machines:
/// the same records as the SQLite file, host locks that exclude runs everywhere, and a heartbeat
/// per running run. A run whose heartbeat is older than `staleAfter` (by the database's clock) is
/// marked interrupted and its locks are freed, since its process id means nothing on another
/// machine; a run of this machine whose process is gone is marked at once, as with SQLite.
final class PostgresHistory: Sendable {
  let database: BlockingPostgres
  let staleAfter: Double

  static let migrations = [
    PostgresMigration(
      version: 1,
      statements: [
        """
        CREATE TABLE runs (
          id BIGSERIAL PRIMARY KEY, started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION,
          status TEXT NOT NULL, exit_code INTEGER, message TEXT, playbook TEXT NOT NULL,
          playbook_sha256 TEXT NOT NULL, inventory TEXT, policy TEXT, limit_selector TEXT,
          extra_var_names TEXT NOT NULL DEFAULT '', job TEXT, trigger TEXT NOT NULL, started_by TEXT NOT NULL,
          machine TEXT NOT NULL, pid INTEGER NOT NULL, process_start TEXT NOT NULL,
          rerun_of BIGINT REFERENCES runs(id), scheduled_for DOUBLE PRECISION,
          hosts_total INTEGER NOT NULL DEFAULT 0, hosts_ok INTEGER NOT NULL DEFAULT 0,
          hosts_failed INTEGER NOT NULL DEFAULT 0, key_fingerprint TEXT, ad_hoc_command TEXT,
          heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now())
        """,
        "CREATE INDEX runs_job ON runs(job, started_at)",
        "CREATE INDEX runs_status ON runs(status)",
        """
        CREATE TABLE run_hosts (
          run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, play TEXT NOT NULL, host TEXT NOT NULL,
          address TEXT NOT NULL, "user" TEXT NOT NULL, status TEXT NOT NULL, message TEXT,
          pushes TEXT NOT NULL DEFAULT '', authenticated_at DOUBLE PRECISION, push_to_auth_ms INTEGER,
          started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION, reconnects INTEGER NOT NULL DEFAULT 0,
          seq BIGSERIAL, PRIMARY KEY (run_id, play, host))
        """,
        """
        CREATE TABLE run_tasks (
          run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, play TEXT NOT NULL, host TEXT NOT NULL,
          position INTEGER NOT NULL, task TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, exit_status INTEGER,
          attempts INTEGER NOT NULL DEFAULT 0, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
          stdout_tail TEXT, stderr_tail TEXT, PRIMARY KEY (run_id, play, host, position))
        """,
        """
        CREATE TABLE run_plays (
          run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, position INTEGER NOT NULL,
          name TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT, key_ttl DOUBLE PRECISION NOT NULL,
          concurrency INTEGER NOT NULL, PRIMARY KEY (run_id, position))
        """,
        """
        CREATE TABLE host_locks (
          host_key TEXT PRIMARY KEY, host TEXT NOT NULL,
          run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, acquired_at DOUBLE PRECISION NOT NULL)
        """,
        "CREATE INDEX host_locks_run ON host_locks(run_id)",
        """
        CREATE TABLE job_state (
          job TEXT PRIMARY KEY, last_fire DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)
        """,
        """
        CREATE TABLE notifications (
          id BIGSERIAL PRIMARY KEY, run_id BIGINT REFERENCES runs(id) ON DELETE CASCADE, job TEXT,
          kind TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL, attempts INTEGER NOT NULL,
          error TEXT, at DOUBLE PRECISION NOT NULL)
        """,
      ]),
    // Several jobs daemons: each fire of a job is claimed by one daemon (its row), whose lease it
    // renews while the run goes; the token fences renewals and the fire's end.
    PostgresMigration(
      version: 2,
      statements: [
        """
        CREATE TABLE job_fires (
          job TEXT NOT NULL, scheduled DOUBLE PRECISION NOT NULL, holder TEXT NOT NULL,
          token BIGSERIAL UNIQUE, state TEXT NOT NULL, claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          expires_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (job, scheduled))
        """,
        "CREATE INDEX job_fires_running ON job_fires (job, state, expires_at)",
      ]),
    // Sharded runs: the shards of one run (`--shard I/N`) share its row through its key, each
    // with its own state and heartbeat; the run's failed hosts are counted per play as they fail.
    PostgresMigration(
      version: 3,
      statements: [
        "ALTER TABLE runs ADD COLUMN run_key TEXT UNIQUE",
        "ALTER TABLE runs ADD COLUMN shards INTEGER",
        "ALTER TABLE run_hosts ADD COLUMN shard INTEGER",
        "ALTER TABLE host_locks ADD COLUMN shard INTEGER",
        """
        CREATE TABLE run_shards (
          run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, shard INTEGER NOT NULL,
          state TEXT NOT NULL, exit_code INTEGER, message TEXT, started_by TEXT NOT NULL, machine TEXT NOT NULL,
          pid INTEGER NOT NULL, process_start TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL,
          finished_at DOUBLE PRECISION, heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
          PRIMARY KEY (run_id, shard))
        """,
        "CREATE INDEX run_shards_state ON run_shards (state)",
        """
        CREATE TABLE run_failures (
          run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, play INTEGER NOT NULL,
          failures INTEGER NOT NULL, PRIMARY KEY (run_id, play))
        """,
      ]),
  ]

  /// The lock that serialises taking host locks (all or none, across machines).
  static let hostLockLock = Int64(0x5358_5459_4C4F_434B)

  init(location: PostgresLocation, staleAfter: Double) throws(HistoryError) {
    database = BlockingPostgres(location)
    self.staleAfter = staleAfter
    do {
      try database.migrate(component: "history", PostgresHistory.migrations)
    } catch {
      throw HistoryError("cannot open the run history \(location): \(error.description)")
    }
  }

  @discardableResult
  func run<T>(_ what: String, _ body: (BlockingPostgres.Session) throws -> T) throws(HistoryError) -> T {
    do {
      return try database.transaction(what, body)
    } catch {
      throw HistoryError(error.description)
    }
  }

  // MARK: - Runs

  func sweepInterrupted(now: Date) throws(HistoryError) -> [Int64] {
    try run("marking interrupted runs") { try sweep($0, now: now) }
  }

  func sweep(_ session: BlockingPostgres.Session, now: Date) throws -> [Int64] {
    var marked: [Int64] = []
    let rows = try session.query(
      """
      SELECT id, machine, pid, process_start, heartbeat_at < now() - make_interval(secs => \(staleAfter)) AS stale
      FROM runs WHERE status = \(RunStatus.running.rawValue) AND shards IS NULL
      """)
    for row in rows {
      let id: Int64 = try row.value("id")
      guard let message = try lapse(row) else { continue }
      try session.query(
        """
        UPDATE runs SET status = \(RunStatus.interrupted.rawValue),
          finished_at = COALESCE(finished_at, \(now.timeIntervalSince1970)), message = COALESCE(message, \(message))
        WHERE id = \(id) AND status = \(RunStatus.running.rawValue)
        """)
      try session.query("DELETE FROM host_locks WHERE run_id = \(id)")
      marked.append(id)
    }
    marked += try sweepShards(session, now: now)
    try session.query(
      "DELETE FROM host_locks WHERE run_id IN (SELECT id FROM runs WHERE status != \(RunStatus.running.rawValue))"
    )
    return marked
  }

  /// Why the runner of a running row (columns machine, pid, process_start and stale) is gone: its
  /// process died on this machine, or its heartbeat lapsed; nil while it lives.
  func lapse(_ row: PostgresRandomAccessRow) throws -> String? {
    let process = ProcessIdentity(
      pid: Int32(truncatingIfNeeded: try row.value("pid", as: Int.self)),
      start: try row.value("process_start"))
    if try row.value("machine", as: String.self) == ProcessIdentity.machine && !process.isAlive {
      return "the process running it stopped without finishing (crash, kill or power loss)"
    }
    let stale: Bool = try row.value("stale")
    return stale
      ? "its runner stopped sending heartbeats for \(Int(staleAfter)) s (crash, kill, power or network loss)"
      : nil
  }

  func heartbeat(runID: Int64) throws(HistoryError) {
    try run("recording the run's heartbeat") { session in
      try session.query(
        "UPDATE runs SET heartbeat_at = now() WHERE id = \(runID) AND status = \(RunStatus.running.rawValue)")
    }
  }

  func begin(_ new: NewRun) throws(HistoryError) -> Int64 {
    let row = RunRow(new)
    return try run("recording the run") { session in
      let rows = try session.query(
        """
        INSERT INTO runs (started_at, status, playbook, playbook_sha256, inventory, policy, limit_selector,
          extra_var_names, job, trigger, started_by, machine, pid, process_start, rerun_of, scheduled_for,
          hosts_total, ad_hoc_command)
        VALUES (\(row.startedAt), \(row.status.rawValue), \(row.playbook), \(row.playbookSHA256), \(row.inventory),
          \(row.policy), \(row.limitSelector), \(row.extraVarNames), \(row.job), \(row.trigger.rawValue),
          \(row.startedBy), \(row.machine), \(row.pid), \(row.processStart), \(row.rerunOf), \(row.scheduledFor),
          \(row.hostsTotal), \(row.adHocCommand))
        RETURNING id
        """)
      return try rows[0].value("id", as: Int64.self)
    }
  }

  func record(runID: Int64, hosts: [HostRecord]) throws(HistoryError) {
    try run("recording host results") { session in
      for host in hosts {
        let row = HostRow(runID: runID, host)
        try session.query(
          """
          INSERT INTO run_hosts (run_id, play, host, address, "user", status, message, pushes, authenticated_at,
            push_to_auth_ms, started_at, finished_at, reconnects, shard)
          VALUES (\(runID), \(row.play), \(row.host), \(row.address), \(row.user), \(row.status.rawValue),
            \(row.message), \(row.pushes), \(row.authenticatedAt), \(row.pushToAuthMilliseconds), \(row.startedAt),
            \(row.finishedAt), \(row.reconnects), \(host.shard))
          ON CONFLICT (run_id, play, host) DO UPDATE SET address = EXCLUDED.address, "user" = EXCLUDED."user",
            shard = EXCLUDED.shard,
            status = EXCLUDED.status, message = EXCLUDED.message, pushes = EXCLUDED.pushes,
            authenticated_at = EXCLUDED.authenticated_at, push_to_auth_ms = EXCLUDED.push_to_auth_ms,
            started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, reconnects = EXCLUDED.reconnects
          """)
        try session.query(
          "DELETE FROM run_tasks WHERE run_id = \(runID) AND play = \(row.play) AND host = \(row.host)")
        for (position, task) in host.tasks.enumerated() {
          let t = TaskRow(runID: runID, play: host.play, host: host.host, position: position, task)
          try session.query(
            """
            INSERT INTO run_tasks (run_id, play, host, position, task, status, reason, exit_status, attempts,
              started_at, finished_at, stdout_tail, stderr_tail)
            VALUES (\(runID), \(t.play), \(t.host), \(position), \(t.task), \(t.status.rawValue), \(t.reason),
              \(t.exitStatus), \(t.attempts), \(t.startedAt), \(t.finishedAt), \(t.stdoutTail), \(t.stderrTail))
            """)
        }
      }
      try session.query(
        """
        UPDATE runs SET
          hosts_ok = (SELECT COUNT(DISTINCT host) FROM run_hosts WHERE run_id = \(runID) AND status = 'ok'
            AND host NOT IN (SELECT host FROM run_hosts WHERE run_id = \(runID) AND status != 'ok')),
          hosts_failed = (SELECT COUNT(DISTINCT host) FROM run_hosts WHERE run_id = \(runID)
            AND status IN (\(HostStatus.failed.rawValue), \(HostStatus.unreachable.rawValue), \(HostStatus.timedOut.rawValue)))
        WHERE id = \(runID)
        """)
    }
  }

  func record(runID: Int64, play: PlayRecord) throws(HistoryError) {
    try run("recording a play") { session in
      try session.query(
        """
        INSERT INTO run_plays (run_id, position, name, outcome, reason, key_ttl, concurrency)
        VALUES (\(runID), \(play.position), \(play.name), \(play.outcome.rawValue), \(play.reason), \(play.keyTTL),
          \(play.concurrency))
        ON CONFLICT (run_id, position) DO UPDATE SET name = EXCLUDED.name, outcome = EXCLUDED.outcome,
          reason = EXCLUDED.reason, key_ttl = EXCLUDED.key_ttl, concurrency = EXCLUDED.concurrency
        """)
    }
  }

  func plays(runID: Int64) throws(HistoryError) -> [PlayRecord] {
    try run("reading plays") { session in
      try session.query("SELECT * FROM run_plays WHERE run_id = \(runID) ORDER BY position").map { row in
        PlayRecord(
          position: try row.value("position"), name: try row.value("name"),
          outcome: PlayOutcome(rawValue: try row.value("outcome")) ?? .unknown,
          reason: try row.value("reason"),
          keyTTL: try row.value("key_ttl"), concurrency: try row.value("concurrency"))
      }
    }
  }

  func setKeyFingerprint(runID: Int64, _ fingerprint: String) throws(HistoryError) {
    try run("recording the key fingerprint") { session in
      try session.query("UPDATE runs SET key_fingerprint = \(fingerprint) WHERE id = \(runID)")
    }
  }

  func finish(id: Int64, status: RunStatus, exitCode: Int32?, message: String?, at: Date) throws(HistoryError)
  {
    try run("recording the run's end") { session in
      try session.query(
        """
        UPDATE runs SET status = \(status.rawValue), exit_code = \(exitCode.map { Int($0) }), message = \(message),
          finished_at = \(at.timeIntervalSince1970) WHERE id = \(id)
        """)
      try session.query("DELETE FROM host_locks WHERE run_id = \(id)")
    }
  }

  static func runRecord(_ row: PostgresRandomAccessRow) throws -> RunRecord {
    func date(_ column: String) throws -> Date? {
      try row.value(column, as: Double?.self).map(Date.init(timeIntervalSince1970:))
    }
    let names: String = try row.value("extra_var_names")
    return RunRecord(
      id: try row.value("id"), startedAt: try date("started_at") ?? Date(timeIntervalSince1970: 0),
      finishedAt: try date("finished_at"), status: RunStatus(rawValue: try row.value("status")) ?? .error,
      exitCode: try row.value("exit_code"), message: try row.value("message"),
      playbook: try row.value("playbook"),
      playbookSHA256: try row.value("playbook_sha256"), inventory: try row.value("inventory"),
      policy: try row.value("policy"), limit: try row.value("limit_selector"),
      extraVarNames: names.isEmpty ? [] : names.split(separator: ",").map(String.init),
      job: try row.value("job"),
      trigger: RunTrigger(rawValue: try row.value("trigger")) ?? .manual,
      startedBy: try row.value("started_by"),
      pid: try row.value("pid"), rerunOf: try row.value("rerun_of"), scheduledFor: try date("scheduled_for"),
      hostsTotal: try row.value("hosts_total"), hostsOK: try row.value("hosts_ok"),
      hostsFailed: try row.value("hosts_failed"), keyFingerprint: try row.value("key_fingerprint"),
      adHocCommand: try row.value("ad_hoc_command"), runKey: try row.value("run_key"),
      shards: try row.value("shards"))
  }

  func runs(job: String?, since: Date?, limit: Int) throws(HistoryError) -> [RunRecord] {
    try run("reading runs") { session in
      try session.query(
        """
        SELECT * FROM runs WHERE (\(job)::TEXT IS NULL OR job = \(job))
          AND (\(since?.timeIntervalSince1970)::DOUBLE PRECISION IS NULL OR started_at >= \(since?.timeIntervalSince1970))
        ORDER BY id DESC LIMIT \(limit)
        """
      ).map(PostgresHistory.runRecord)
    }
  }

  func run(id: Int64) throws(HistoryError) -> RunRecord? {
    try run("reading a run") { session in
      try session.query("SELECT * FROM runs WHERE id = \(id)").first.map(PostgresHistory.runRecord)
    }
  }

  func latestRun(job: String, pid: Int32, since: Date) throws(HistoryError) -> RunRecord? {
    try run("reading a run") { session in
      try session.query(
        """
        SELECT * FROM runs WHERE job = \(job) AND pid = \(Int(pid)) AND machine = \(ProcessIdentity.machine)
          AND started_at >= \(since.timeIntervalSince1970 - 1)
        ORDER BY id DESC LIMIT 1
        """
      ).first.map(PostgresHistory.runRecord)
    }
  }

  func hosts(runID: Int64, host: String?) throws(HistoryError) -> [HostRecord] {
    try run("reading a run's hosts") { session in
      let hostRows = try session.query(
        """
        SELECT * FROM run_hosts WHERE run_id = \(runID) AND (\(host)::TEXT IS NULL OR host = \(host)) ORDER BY seq
        """)
      return try hostRows.map { row in
        func date(_ column: String) throws -> Date? {
          try row.value(column, as: Double?.self).map(Date.init(timeIntervalSince1970:))
        }
        let play: String = try row.value("play")
        let name: String = try row.value("host")
        let tasks = try session.query(
          """
          SELECT * FROM run_tasks WHERE run_id = \(runID) AND play = \(play) AND host = \(name) ORDER BY position
          """
        ).map { task in
          func date(_ column: String) throws -> Date? {
            try task.value(column, as: Double?.self).map(Date.init(timeIntervalSince1970:))
          }
          return TaskRecord(
            name: try task.value("task"), status: TaskStatus(rawValue: try task.value("status")) ?? .failed,
            reason: try task.value("reason"),
            exitStatus: try task.value("exit_status", as: Int?.self).map {
              Int32(truncatingIfNeeded: $0)
            }, attempts: try task.value("attempts"), startedAt: try date("started_at"),
            finishedAt: try date("finished_at"), stdoutTail: try task.value("stdout_tail"),
            stderrTail: try task.value("stderr_tail"))
        }
        let pushes: String = try row.value("pushes")
        return HostRecord(
          play: play, host: name, address: try row.value("address"), user: try row.value("user"),
          status: HostStatus(rawValue: try row.value("status")) ?? .failed, message: try row.value("message"),
          pushes: pushes.split(separator: ",").compactMap { Double($0) }.map(
            Date.init(timeIntervalSince1970:)),
          authenticatedAt: try date("authenticated_at"),
          pushToAuthMilliseconds: try row.value("push_to_auth_ms"),
          startedAt: try date("started_at"), finishedAt: try date("finished_at"),
          reconnects: try row.value("reconnects"), tasks: tasks, shard: try row.value("shard"))
      }
    }
  }

  // MARK: - Host locks

  func tryLock(runID: Int64, shard: Int?, hosts: [HostLockKey], now: Date) throws(HistoryError) -> LockHolder?
  {
    try run("taking host locks") { session in
      // One taker at a time, on every machine: all or none stays true without retries.
      try session.query("SELECT pg_advisory_xact_lock(\(PostgresHistory.hostLockLock))")
      _ = try sweep(session, now: now)
      let keys = hosts.map(\.key)
      if let row = try session.query(
        """
        SELECT l.host_key, l.run_id, r.job, r.started_by, r.trigger FROM host_locks l JOIN runs r ON r.id = l.run_id
        WHERE l.host_key = ANY(\(keys)) AND l.run_id != \(runID) LIMIT 1
        """
      ).first {
        let key: String = try row.value("host_key")
        return LockHolder(
          host: hosts.first { $0.key == key }?.name ?? key, runID: try row.value("run_id"),
          job: try row.value("job"), startedBy: try row.value("started_by"),
          trigger: RunTrigger(rawValue: try row.value("trigger")) ?? .manual)
      }
      for host in hosts {
        try session.query(
          """
          INSERT INTO host_locks (host_key, host, run_id, acquired_at, shard)
          VALUES (\(host.key), \(host.name), \(runID), \(now.timeIntervalSince1970), \(shard))
          ON CONFLICT (host_key) DO UPDATE SET host = EXCLUDED.host, run_id = EXCLUDED.run_id,
            acquired_at = EXCLUDED.acquired_at, shard = EXCLUDED.shard
          """)
      }
      return nil
    }
  }

  func locks() throws(HistoryError) -> [(host: String, runID: Int64)] {
    try run("reading host locks") { session in
      try session.query("SELECT host, run_id FROM host_locks ORDER BY host").map {
        (host: try $0.value("host"), runID: try $0.value("run_id"))
      }
    }
  }

  // MARK: - Jobs and notifications

  func lastFire(job: String) throws(HistoryError) -> Date? {
    try run("reading job state") { session in
      try session.query("SELECT last_fire FROM job_state WHERE job = \(job)").first.map {
        Date(timeIntervalSince1970: try $0.value("last_fire"))
      }
    }
  }

  func setLastFire(job: String, at fire: Date) throws(HistoryError) {
    try run("recording job state") { session in
      try session.query(
        """
        INSERT INTO job_state (job, last_fire, updated_at) VALUES (\(job), \(fire.timeIntervalSince1970),
          \(Date().timeIntervalSince1970))
        ON CONFLICT (job) DO UPDATE SET last_fire = GREATEST(job_state.last_fire, EXCLUDED.last_fire),
          updated_at = EXCLUDED.updated_at
        """)
    }
  }

  func recordNotification(_ record: NotificationRecord) throws(HistoryError) {
    let row = NotificationRow(record)
    try run("recording a notification") { session in
      try session.query(
        """
        INSERT INTO notifications (run_id, job, kind, target, outcome, attempts, error, at)
        VALUES (\(row.runID), \(row.job), \(row.kind.rawValue), \(row.target), \(row.outcome.rawValue),
          \(row.attempts), \(row.error), \(row.at))
        """)
    }
  }

  func notifications(runID: Int64) throws(HistoryError) -> [NotificationRecord] {
    try run("reading notifications") { session in
      try session.query("SELECT * FROM notifications WHERE run_id = \(runID) ORDER BY id").map { row in
        NotificationRecord(
          runID: try row.value("run_id"), job: try row.value("job"),
          kind: NotificationKind(rawValue: try row.value("kind")) ?? .command,
          target: try row.value("target"),
          outcome: NotificationOutcome(rawValue: try row.value("outcome")) ?? .failed,
          attempts: try row.value("attempts"), error: try row.value("error"),
          at: Date(timeIntervalSince1970: try row.value("at")))
      }
    }
  }

  // MARK: - Fires shared by several daemons

  func claimFire(job: String, scheduled: Date, holder: String, lease: Double) throws(HistoryError)
    -> FireClaim
  {
    try run("claiming a fire of job '\(job)'") { session in
      let claimed = try session.query(
        """
        INSERT INTO job_fires (job, scheduled, holder, state, expires_at)
        VALUES (\(job), \(scheduled.timeIntervalSince1970), \(holder), 'running', now() + make_interval(secs => \(lease)))
        ON CONFLICT (job, scheduled) DO NOTHING RETURNING token
        """)
      guard let row = claimed.first else {
        let other = try session.query(
          "SELECT holder FROM job_fires WHERE job = \(job) AND scheduled = \(scheduled.timeIntervalSince1970)"
        )
        return FireClaim.taken(by: try other.first?.value("holder", as: String.self) ?? "another daemon")
      }
      let token: Int64 = try row.value("token")
      // Another fire of the job still going under a live lease: the job's overlap rule applies.
      if let running = try session.query(
        """
        SELECT holder, scheduled FROM job_fires WHERE job = \(job) AND state = 'running' AND token != \(token)
          AND expires_at > now() ORDER BY scheduled DESC LIMIT 1
        """
      ).first {
        try session.query("UPDATE job_fires SET state = 'overlapped' WHERE token = \(token)")
        return FireClaim.overlapping(
          holder: try running.value("holder"),
          scheduled: Date(timeIntervalSince1970: try running.value("scheduled")), token: token)
      }
      return FireClaim.claimed(token: token)
    }
  }

  func renewFires(tokens: [Int64], lease: Double) throws(HistoryError) -> [Int64] {
    try run("renewing fire leases") { session in
      let renewed = try session.query(
        """
        UPDATE job_fires SET expires_at = now() + make_interval(secs => \(lease))
        WHERE token = ANY(\(tokens)) AND state = 'running' RETURNING token
        """
      ).map { try $0.value("token", as: Int64.self) }
      return tokens.filter { !renewed.contains($0) }
    }
  }

  func endFire(token: Int64, state: String) throws(HistoryError) {
    try run("recording a fire's end") { session in
      try session.query(
        "UPDATE job_fires SET state = \(state), expires_at = now() WHERE token = \(token) AND state = 'running'"
      )
    }
  }
}
