import Foundation
import PostgresNIO
import SixtyPostgres

/// Sharded runs: the shards of one run share its row (found by its key), each with a row of its
/// own in `run_shards`; the run is final once every shard has ended.
extension PostgresHistory {
  /// The lock that serialises shards joining runs.
  static let shardJoinLock = Int64(0x5358_5459_5348_5244)

  func joinShard(_ new: NewRun, join: ShardJoin) throws(HistoryError) -> Int64 {
    let row = RunRow(new)
    let outcome: Result<Int64, HistoryError> = try run("joining the sharded run '\(join.key)'") { session in
      try session.query("SELECT pg_advisory_xact_lock(\(PostgresHistory.shardJoinLock))")
      let shardText = "\(join.shard)/\(join.count)"
      var existing = try session.query(
        "SELECT id, shards, playbook_sha256, status FROM runs WHERE run_key = \(join.key) FOR UPDATE"
      ).first
      if let found = existing {
        let id: Int64 = try found.value("id")
        let shards = try found.value("shards", as: Int?.self)
        let sha: String = try found.value("playbook_sha256")
        guard shards == join.count else {
          return .failure(
            HistoryError(
              "run \(id) (run id '\(join.key)') has \(shards.map(String.init) ?? "no") shards, and this is --shard \(shardText); expected --shard I/\(shards.map(String.init) ?? "N") for that run, or another --run-id."
            ))
        }
        guard sha == row.playbookSHA256 else {
          return .failure(
            HistoryError(
              "run \(id) (run id '\(join.key)') runs a playbook with SHA-256 \(sha.prefix(16))…, and this shard's playbook has \(row.playbookSHA256.prefix(16))…; every shard of a run must run the same playbook (or pass another --run-id)."
            ))
        }
        if let other = try session.query(
          "SELECT state, machine, pid FROM run_shards WHERE run_id = \(id) AND shard = \(join.shard)"
        ).first {
          let state: String = try other.value("state")
          if state == RunStatus.running.rawValue {
            return .failure(
              HistoryError(
                "shard \(shardText) of run \(id) (run id '\(join.key)') is already running (process \(try other.value("pid", as: Int.self)) on \(try other.value("machine", as: String.self))); expected each shard number once per run."
              ))
          }
          guard join.derived else {
            return .failure(
              HistoryError(
                "shard \(shardText) of run \(id) (run id '\(join.key)') already ran (\(state)); pass another --run-id to run it again as a new run."
              ))
          }
          // A derived key names the inputs, not one run: that shard's run is over, so this is a new
          // run of the same inputs (tomorrow's run of the same command). The old run keeps its key
          // with its id appended.
          try session.query("UPDATE runs SET run_key = run_key || '#' || id::TEXT WHERE id = \(id)")
          existing = nil
        }
      }
      let id: Int64
      if let existing {
        id = try existing.value("id")
      } else {
        let inserted = try session.query(
          """
          INSERT INTO runs (started_at, status, playbook, playbook_sha256, inventory, policy, limit_selector,
            extra_var_names, job, trigger, started_by, machine, pid, process_start, rerun_of, scheduled_for,
            hosts_total, ad_hoc_command, run_key, shards)
          VALUES (\(row.startedAt), \(row.status.rawValue), \(row.playbook), \(row.playbookSHA256), \(row.inventory),
            \(row.policy), \(row.limitSelector), \(row.extraVarNames), \(row.job), \(row.trigger.rawValue),
            \(row.startedBy), \(row.machine), \(row.pid), \(row.processStart), \(row.rerunOf), \(row.scheduledFor),
            \(row.hostsTotal), \(row.adHocCommand), \(join.key), \(join.count))
          ON CONFLICT (run_key) DO NOTHING
          RETURNING id
          """)
        guard let first = inserted.first else {
          return .failure(
            HistoryError("the run id '\(join.key)' was taken while this shard joined; try again."))
        }
        id = try first.value("id")
      }
      try session.query(
        """
        INSERT INTO run_shards (run_id, shard, state, started_by, machine, pid, process_start, started_at)
        VALUES (\(id), \(join.shard), \(RunStatus.running.rawValue), \(row.startedBy), \(row.machine), \(row.pid),
          \(row.processStart), \(row.startedAt))
        """)
      return .success(id)
    }
    return try outcome.get()
  }

  func heartbeat(runID: Int64, shard: Int) throws(HistoryError) {
    try run("recording the shard's heartbeat") { session in
      try session.query(
        """
        UPDATE run_shards SET heartbeat_at = now()
        WHERE run_id = \(runID) AND shard = \(shard) AND state = \(RunStatus.running.rawValue)
        """)
    }
  }

  func finish(id: Int64, shard: Int, status: RunStatus, exitCode: Int32?, message: String?, at: Date)
    throws(HistoryError)
  {
    try run("recording the shard's end") { session in
      try session.query(
        """
        UPDATE run_shards SET state = \(status.rawValue), exit_code = \(exitCode.map { Int($0) }),
          message = \(message), finished_at = \(at.timeIntervalSince1970)
        WHERE run_id = \(id) AND shard = \(shard)
        """)
      try session.query("DELETE FROM host_locks WHERE run_id = \(id) AND shard = \(shard)")
      try settle(session, runID: id)
    }
  }

  /// Marks the run final once every shard has ended: aborted if a shard was, else failed if one
  /// failed, else error, refused or interrupted in that order, else succeeded.
  func settle(_ session: BlockingPostgres.Session, runID: Int64) throws {
    guard let run = try session.query("SELECT shards, status FROM runs WHERE id = \(runID) FOR UPDATE").first,
      let shards = try run.value("shards", as: Int?.self),
      try run.value("status", as: String.self) == RunStatus.running.rawValue
    else { return }
    let rows = try session.query(
      "SELECT shard, state, exit_code, message, finished_at FROM run_shards WHERE run_id = \(runID) ORDER BY shard"
    )
    var ended: [(shard: Int, status: RunStatus, exit: Int?, message: String?, at: Double)] = []
    for row in rows {
      let status = RunStatus(rawValue: try row.value("state")) ?? .error
      guard status != .running else { return }
      ended.append(
        (
          try row.value("shard"), status, try row.value("exit_code"), try row.value("message"),
          try row.value("finished_at", as: Double?.self) ?? Date().timeIntervalSince1970
        ))
    }
    guard ended.count >= shards else { return }
    let order: [RunStatus] = [.aborted, .failed, .error, .refused, .interrupted]
    let worst = order.first { status in ended.contains { $0.status == status } }
    let chosen = worst.flatMap { status in ended.first { $0.status == status } }
    let status = worst ?? .succeeded
    let exit = chosen?.exit ?? (status == .succeeded ? 0 : nil)
    let message = chosen.map { "shard \($0.shard)/\(shards): \($0.message ?? $0.status.rawValue)" }
    let finished = ended.map(\.at).max() ?? Date().timeIntervalSince1970
    try session.query(
      """
      UPDATE runs SET status = \(status.rawValue), exit_code = \(exit), message = \(message),
        finished_at = \(finished) WHERE id = \(runID)
      """)
  }

  /// Marks the running shards whose process is gone (on this machine) or whose heartbeat is stale
  /// interrupted, frees their locks, and settles their runs.
  func sweepShards(_ session: BlockingPostgres.Session, now: Date) throws -> [Int64] {
    let rows = try session.query(
      """
      SELECT run_id, shard, machine, pid, process_start,
        heartbeat_at < now() - make_interval(secs => \(staleAfter)) AS stale
      FROM run_shards WHERE state = \(RunStatus.running.rawValue)
      """)
    var marked: [Int64] = []
    for row in rows {
      let id: Int64 = try row.value("run_id")
      let shard: Int = try row.value("shard")
      guard let message = try lapse(row) else { continue }
      try session.query(
        """
        UPDATE run_shards SET state = \(RunStatus.interrupted.rawValue),
          finished_at = COALESCE(finished_at, \(now.timeIntervalSince1970)), message = COALESCE(message, \(message))
        WHERE run_id = \(id) AND shard = \(shard) AND state = \(RunStatus.running.rawValue)
        """)
      try session.query("DELETE FROM host_locks WHERE run_id = \(id) AND shard = \(shard)")
      try settle(session, runID: id)
      if !marked.contains(id) { marked.append(id) }
    }
    return marked
  }

  func shards(runID: Int64) throws(HistoryError) -> [ShardRecord] {
    try run("reading a run's shards") { session in
      try session.query("SELECT * FROM run_shards WHERE run_id = \(runID) ORDER BY shard").map { row in
        ShardRecord(
          shard: try row.value("shard"), status: RunStatus(rawValue: try row.value("state")) ?? .error,
          exitCode: try row.value("exit_code"), message: try row.value("message"),
          startedBy: try row.value("started_by"), pid: try row.value("pid"),
          startedAt: Date(timeIntervalSince1970: try row.value("started_at")),
          finishedAt: try row.value("finished_at", as: Double?.self).map(Date.init(timeIntervalSince1970:)))
      }
    }
  }

  func run(key: String) throws(HistoryError) -> RunRecord? {
    try run("reading a run") { session in
      try session.query("SELECT * FROM runs WHERE run_key = \(key)").first.map(PostgresHistory.runRecord)
    }
  }

  /// Counts one more failed host in play `play` of the run; the run's count after it.
  func addFailure(runID: Int64, play: Int) throws(HistoryError) -> Int {
    try run("counting a failed host") { session in
      let rows = try session.query(
        """
        INSERT INTO run_failures (run_id, play, failures) VALUES (\(runID), \(play), 1)
        ON CONFLICT (run_id, play) DO UPDATE SET failures = run_failures.failures + 1
        RETURNING failures
        """)
      return try rows.first?.value("failures", as: Int.self) ?? 0
    }
  }

  func failures(runID: Int64, play: Int) throws(HistoryError) -> Int {
    try run("reading the run's failed hosts") { session in
      try session.query("SELECT failures FROM run_failures WHERE run_id = \(runID) AND play = \(play)").first?
        .value("failures", as: Int.self) ?? 0
    }
  }

  /// How many shards of each of `runIDs` have ended.
  func shardsEnded(runIDs: [Int64]) throws(HistoryError) -> [Int64: Int] {
    guard !runIDs.isEmpty else { return [:] }
    return try run("reading shards") { session in
      var counts: [Int64: Int] = [:]
      for row in try session.query(
        """
        SELECT run_id, COUNT(*) FILTER (WHERE state != \(RunStatus.running.rawValue)) AS ended
        FROM run_shards WHERE run_id = ANY(\(runIDs)) GROUP BY run_id
        """)
      {
        counts[try row.value("run_id")] = try row.value("ended", as: Int.self)
      }
      return counts
    }
  }
}
