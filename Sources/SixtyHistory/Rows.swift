import Foundation
import GRDB

// The rows of the history's tables as GRDB Codable records. Their coding keys are the columns of
// the schema the migrations create, so a history written before these types
// existed reads the same. Times are stored as seconds since 1970 (REAL); lists as comma-joined
// text. The public records (`RunRecord`, `HostRecord`, …) are built from them.

extension RunStatus: DatabaseValueConvertible {}
extension RunTrigger: DatabaseValueConvertible {}
extension HostStatus: DatabaseValueConvertible {}
extension TaskStatus: DatabaseValueConvertible {}
extension PlayOutcome: DatabaseValueConvertible {}
extension NotificationKind: DatabaseValueConvertible {}
extension NotificationOutcome: DatabaseValueConvertible {}

extension Date {
  fileprivate init?(seconds: Double?) {
    guard let seconds else { return nil }
    self.init(timeIntervalSince1970: seconds)
  }
}

/// A row of `runs`.
struct RunRow: Codable, FetchableRecord, PersistableRecord {
  static let databaseTableName = "runs"

  var id: Int64?
  var startedAt: Double
  var finishedAt: Double?
  var status: RunStatus
  var exitCode: Int?
  var message: String?
  var playbook: String
  var playbookSHA256: String
  var inventory: String?
  var policy: String?
  var limitSelector: String?
  var extraVarNames: String
  var job: String?
  var trigger: RunTrigger
  var startedBy: String
  var machine: String
  var pid: Int
  var processStart: String
  var rerunOf: Int64?
  var scheduledFor: Double?
  var hostsTotal: Int
  var hostsOK: Int
  var hostsFailed: Int
  var keyFingerprint: String?
  var adHocCommand: String?

  enum CodingKeys: String, CodingKey {
    case id, status, message, playbook, inventory, policy, job, trigger, machine, pid
    case startedAt = "started_at", finishedAt = "finished_at", exitCode = "exit_code"
    case playbookSHA256 = "playbook_sha256", limitSelector = "limit_selector"
    case extraVarNames = "extra_var_names", startedBy = "started_by", processStart = "process_start"
    case rerunOf = "rerun_of", scheduledFor = "scheduled_for", hostsTotal = "hosts_total"
    case hostsOK = "hosts_ok", hostsFailed = "hosts_failed", keyFingerprint = "key_fingerprint"
    case adHocCommand = "ad_hoc_command"
  }

  /// A new run, `running`, with no host counted yet.
  init(_ run: NewRun) {
    startedAt = run.startedAt.timeIntervalSince1970
    status = .running
    playbook = run.playbook
    playbookSHA256 = run.playbookSHA256
    inventory = run.inventory
    policy = run.policy
    limitSelector = run.limit
    extraVarNames = run.extraVarNames.joined(separator: ",")
    job = run.job
    trigger = run.trigger
    startedBy = run.startedBy
    machine = ProcessIdentity.machine
    pid = Int(run.process.pid)
    processStart = run.process.start
    rerunOf = run.rerunOf
    scheduledFor = run.scheduledFor?.timeIntervalSince1970
    hostsTotal = run.hostsTotal
    adHocCommand = run.adHocCommand
    hostsOK = 0
    hostsFailed = 0
  }

  var record: RunRecord {
    RunRecord(
      id: id ?? 0, startedAt: Date(timeIntervalSince1970: startedAt), finishedAt: Date(seconds: finishedAt),
      status: status, exitCode: exitCode, message: message, playbook: playbook,
      playbookSHA256: playbookSHA256,
      inventory: inventory, policy: policy, limit: limitSelector,
      extraVarNames: extraVarNames.isEmpty ? [] : extraVarNames.split(separator: ",").map(String.init),
      job: job, trigger: trigger, startedBy: startedBy, pid: pid, rerunOf: rerunOf,
      scheduledFor: Date(seconds: scheduledFor), hostsTotal: hostsTotal, hostsOK: hostsOK,
      hostsFailed: hostsFailed, keyFingerprint: keyFingerprint, adHocCommand: adHocCommand)
  }
}

/// A row of `run_hosts` (its tasks are rows of `run_tasks`).
struct HostRow: Codable, FetchableRecord, PersistableRecord {
  static let databaseTableName = "run_hosts"

  var runID: Int64
  var play: String
  var host: String
  var address: String
  var user: String
  var status: HostStatus
  var message: String?
  var pushes: String
  var authenticatedAt: Double?
  var pushToAuthMilliseconds: Int?
  var startedAt: Double?
  var finishedAt: Double?
  var reconnects: Int

  enum CodingKeys: String, CodingKey {
    case play, host, address, user, status, message, pushes, reconnects
    case runID = "run_id", authenticatedAt = "authenticated_at", pushToAuthMilliseconds = "push_to_auth_ms"
    case startedAt = "started_at", finishedAt = "finished_at"
  }

  init(runID: Int64, _ host: HostRecord) {
    self.runID = runID
    play = host.play
    self.host = host.host
    address = host.address
    user = host.user
    status = host.status
    message = host.message
    pushes = host.pushes.map { String($0.timeIntervalSince1970) }.joined(separator: ",")
    authenticatedAt = host.authenticatedAt?.timeIntervalSince1970
    pushToAuthMilliseconds = host.pushToAuthMilliseconds
    startedAt = host.startedAt?.timeIntervalSince1970
    finishedAt = host.finishedAt?.timeIntervalSince1970
    reconnects = host.reconnects
  }

  func record(tasks: [TaskRecord]) -> HostRecord {
    HostRecord(
      play: play, host: host, address: address, user: user, status: status, message: message,
      pushes: pushes.split(separator: ",").compactMap { Double($0) }.map(Date.init(timeIntervalSince1970:)),
      authenticatedAt: Date(seconds: authenticatedAt), pushToAuthMilliseconds: pushToAuthMilliseconds,
      startedAt: Date(seconds: startedAt), finishedAt: Date(seconds: finishedAt), reconnects: reconnects,
      tasks: tasks)
  }
}

/// A row of `run_tasks`.
struct TaskRow: Codable, FetchableRecord, PersistableRecord {
  static let databaseTableName = "run_tasks"

  var runID: Int64
  var play: String
  var host: String
  var position: Int
  var task: String
  var status: TaskStatus
  var reason: String?
  var exitStatus: Int?
  var attempts: Int
  var startedAt: Double?
  var finishedAt: Double?
  var stdoutTail: String?
  var stderrTail: String?

  enum CodingKeys: String, CodingKey {
    case play, host, position, task, status, reason, attempts
    case runID = "run_id", exitStatus = "exit_status", startedAt = "started_at", finishedAt = "finished_at"
    case stdoutTail = "stdout_tail", stderrTail = "stderr_tail"
  }

  init(runID: Int64, play: String, host: String, position: Int, _ task: TaskRecord) {
    self.runID = runID
    self.play = play
    self.host = host
    self.position = position
    self.task = task.name
    status = task.status
    reason = task.reason
    exitStatus = task.exitStatus.map { Int($0) }
    attempts = task.attempts
    startedAt = task.startedAt?.timeIntervalSince1970
    finishedAt = task.finishedAt?.timeIntervalSince1970
    stdoutTail = task.stdoutTail
    stderrTail = task.stderrTail
  }

  var record: TaskRecord {
    TaskRecord(
      name: task, status: status, reason: reason,
      exitStatus: exitStatus.map { Int32(truncatingIfNeeded: $0) },
      attempts: attempts, startedAt: Date(seconds: startedAt), finishedAt: Date(seconds: finishedAt),
      stdoutTail: stdoutTail, stderrTail: stderrTail)
  }
}

/// A row of `run_plays`.
struct PlayRow: Codable, FetchableRecord, PersistableRecord {
  static let databaseTableName = "run_plays"

  var runID: Int64
  var position: Int
  var name: String
  var outcome: PlayOutcome
  var reason: String?
  var keyTTL: Double
  var concurrency: Int

  enum CodingKeys: String, CodingKey {
    case position, name, outcome, reason, concurrency
    case runID = "run_id", keyTTL = "key_ttl"
  }

  init(runID: Int64, _ play: PlayRecord) {
    self.runID = runID
    position = play.position
    name = play.name
    outcome = play.outcome
    reason = play.reason
    keyTTL = play.keyTTL
    concurrency = play.concurrency
  }

  var record: PlayRecord {
    PlayRecord(
      position: position, name: name, outcome: outcome, reason: reason, keyTTL: keyTTL,
      concurrency: concurrency)
  }
}

/// A row of `notifications`.
struct NotificationRow: Codable, FetchableRecord, PersistableRecord {
  static let databaseTableName = "notifications"

  var id: Int64?
  var runID: Int64?
  var job: String?
  var kind: NotificationKind
  var target: String
  var outcome: NotificationOutcome
  var attempts: Int
  var error: String?
  var at: Double

  enum CodingKeys: String, CodingKey {
    case id, job, kind, target, outcome, attempts, error, at
    case runID = "run_id"
  }

  init(_ record: NotificationRecord) {
    runID = record.runID
    job = record.job
    kind = record.kind
    target = record.target
    outcome = record.outcome
    attempts = record.attempts
    error = record.error
    at = record.at.timeIntervalSince1970
  }

  var record: NotificationRecord {
    NotificationRecord(
      runID: runID, job: job, kind: kind, target: target, outcome: outcome, attempts: attempts, error: error,
      at: Date(timeIntervalSince1970: at))
  }
}
