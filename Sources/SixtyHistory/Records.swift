import Foundation
import GRDB

public enum RunStatus: String, Sendable, Codable, CaseIterable {
  /// In progress (or its process died and no sweep has run yet).
  case running
  /// Every host finished ok.
  case succeeded
  /// Some host failed.
  case failed
  /// Stopped early: failure threshold, window cutoff, run timeout or interrupt.
  case aborted
  /// The process running it stopped without finishing; found by a later start.
  case interrupted
  /// Never started: refused by policy or by a busy host lock.
  case refused
  /// Never started: the playbook, inventory or policy could not be used.
  case error
  /// Never started: a scheduled fire while the previous run of the job was still going.
  case skipped

  /// The status for a finished run's exit code (the codes of `sixty run`).
  public init(exitCode: Int32) {
    switch exitCode {
    case 0: self = .succeeded
    case 1: self = .failed
    case 3: self = .refused
    case 4: self = .aborted
    default: self = .error
    }
  }
}

public enum RunTrigger: String, Sendable, Codable, CaseIterable {
  case manual, schedule, catchUp = "catch-up", rerun, queued
}

/// How a host of a run ended (the names of the scheduler's host statuses).
public enum HostStatus: String, Sendable, Codable, CaseIterable {
  case pending, ok, failed, unreachable
  case timedOut = "timed out"
  case notStarted = "not started"

  /// Did the host fail (`failed`, `unreachable` or `timed out`), as the run's counts say?
  public var isFailure: Bool { self == .failed || self == .unreachable || self == .timedOut }
}

/// How one task on one host ended.
public enum TaskStatus: String, Sendable, Codable, CaseIterable {
  case pending, ok, failed, skipped
  case timedOut = "timed out"
}

/// How one play of a run ended.
public enum PlayOutcome: String, Sendable, Codable, CaseIterable {
  case completed, aborted, interrupted
  case timedOut = "timed out"
  /// Never stored: the play of a run recorded before plays were, known only by its hosts.
  case unknown
}

/// What a job notification was.
public enum NotificationKind: String, Sendable, Codable, CaseIterable {
  case webhook, command
}

/// Whether a job notification reached its target.
public enum NotificationOutcome: String, Sendable, Codable, CaseIterable {
  case sent, failed
}

/// A run as it starts.
public struct NewRun: Sendable {
  public var startedAt: Date
  public var playbook: String
  public var playbookSHA256: String
  public var inventory: String?
  public var policy: String?
  public var limit: String?
  /// Names only: values may be secrets and never reach the disk.
  public var extraVarNames: [String]
  public var job: String?
  public var trigger: RunTrigger
  public var startedBy: String
  public var process: ProcessIdentity
  public var rerunOf: Int64?
  public var scheduledFor: Date?
  public var hostsTotal: Int
  /// An ad-hoc run's command as its runner encodes it (JSON), so it can be run again.
  public var adHocCommand: String?

  public init(
    startedAt: Date = Date(), playbook: String, playbookSHA256: String, inventory: String?, policy: String?,
    limit: String? = nil, extraVarNames: [String] = [], job: String? = nil, trigger: RunTrigger = .manual,
    startedBy: String = NewRun.currentUser, process: ProcessIdentity = .current, rerunOf: Int64? = nil,
    scheduledFor: Date? = nil, hostsTotal: Int = 0, adHocCommand: String? = nil
  ) {
    self.startedAt = startedAt
    self.playbook = playbook
    self.playbookSHA256 = playbookSHA256
    self.inventory = inventory
    self.policy = policy
    self.limit = limit
    self.extraVarNames = extraVarNames
    self.job = job
    self.trigger = trigger
    self.startedBy = startedBy
    self.process = process
    self.rerunOf = rerunOf
    self.scheduledFor = scheduledFor
    self.hostsTotal = hostsTotal
    self.adHocCommand = adHocCommand
  }

  /// `user@machine` of this process.
  public static var currentUser: String {
    let user =
      ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 }
      ?? getpwuid(geteuid()).flatMap { String(validatingCString: $0.pointee.pw_name) } ?? "uid \(geteuid())"
    return "\(user)@\(ProcessIdentity.machine)"
  }
}

public struct RunRecord: Sendable {
  public var id: Int64
  public var startedAt: Date
  public var finishedAt: Date?
  public var status: RunStatus
  public var exitCode: Int?
  public var message: String?
  public var playbook: String
  public var playbookSHA256: String
  public var inventory: String?
  public var policy: String?
  public var limit: String?
  public var extraVarNames: [String]
  public var job: String?
  public var trigger: RunTrigger
  public var startedBy: String
  public var pid: Int
  public var rerunOf: Int64?
  public var scheduledFor: Date?
  public var hostsTotal: Int
  public var hostsOK: Int
  public var hostsFailed: Int
  /// The fingerprint of the key the run pushed.
  public var keyFingerprint: String?
  /// An ad-hoc run's command as its runner encoded it (JSON).
  public var adHocCommand: String?
  /// The key the shards of a sharded run share (`--run-id`, or derived from the run's inputs).
  public var runKey: String? = nil
  /// How many shards the run has (nil: not sharded).
  public var shards: Int? = nil
  /// How many of its shards have ended (filled in by `History.runs`).
  public var shardsEnded = 0

  public var duration: TimeInterval? { finishedAt.map { $0.timeIntervalSince(startedAt) } }
}

public struct TaskRecord: Sendable {
  public var name: String
  public var status: TaskStatus
  public var reason: String?
  public var exitStatus: Int32?
  public var attempts: Int
  public var startedAt: Date?
  public var finishedAt: Date?
  public var stdoutTail: String?
  public var stderrTail: String?

  public init(
    name: String, status: TaskStatus, reason: String? = nil, exitStatus: Int32? = nil, attempts: Int = 0,
    startedAt: Date? = nil, finishedAt: Date? = nil, stdoutTail: String? = nil, stderrTail: String? = nil
  ) {
    self.name = name
    self.status = status
    self.reason = reason
    self.exitStatus = exitStatus
    self.attempts = attempts
    self.startedAt = startedAt
    self.finishedAt = finishedAt
    self.stdoutTail = stdoutTail
    self.stderrTail = stderrTail
  }

  /// The last `limit` bytes of `text` (on a character boundary), for the history.
  public static func tail(_ text: String, limit: Int = 4096) -> String {
    let utf8 = text.utf8
    guard utf8.count > limit else { return text }
    var index = utf8.index(utf8.endIndex, offsetBy: -limit)
    while index < utf8.endIndex && !text.unicodeScalars.indices.contains(index) {
      index = utf8.index(after: index)
    }
    return "…" + String(text[index...])
  }
}

/// How one play of a run ended.
public struct PlayRecord: Sendable {
  /// 0 for the first play.
  public var position: Int
  public var name: String
  public var outcome: PlayOutcome
  public var reason: String?
  /// How long a pushed key stayed valid, in seconds.
  public var keyTTL: Double
  /// Hosts at once.
  public var concurrency: Int

  public init(
    position: Int, name: String, outcome: PlayOutcome, reason: String? = nil, keyTTL: Double, concurrency: Int
  ) {
    self.position = position
    self.name = name
    self.outcome = outcome
    self.reason = reason
    self.keyTTL = keyTTL
    self.concurrency = concurrency
  }

}

public struct HostRecord: Sendable {
  public var play: String
  public var host: String
  public var address: String
  public var user: String
  public var status: HostStatus
  public var message: String?
  public var pushes: [Date]
  public var authenticatedAt: Date?
  public var pushToAuthMilliseconds: Int?
  public var startedAt: Date?
  public var finishedAt: Date?
  public var reconnects: Int
  public var tasks: [TaskRecord]
  /// The shard that ran the host, in a sharded run.
  public var shard: Int?

  public init(
    play: String, host: String, address: String, user: String, status: HostStatus, message: String? = nil,
    pushes: [Date] = [], authenticatedAt: Date? = nil, pushToAuthMilliseconds: Int? = nil,
    startedAt: Date? = nil, finishedAt: Date? = nil, reconnects: Int = 0, tasks: [TaskRecord] = [],
    shard: Int? = nil
  ) {
    self.shard = shard
    self.play = play
    self.host = host
    self.address = address
    self.user = user
    self.status = status
    self.message = message
    self.pushes = pushes
    self.authenticatedAt = authenticatedAt
    self.pushToAuthMilliseconds = pushToAuthMilliseconds
    self.startedAt = startedAt
    self.finishedAt = finishedAt
    self.reconnects = reconnects
    self.tasks = tasks
  }

  /// Did the host fail (as opposed to finishing ok or being left out on purpose)?
  public var didNotSucceed: Bool { status != .ok }
}

public struct NotificationRecord: Sendable {
  public var runID: Int64?
  public var job: String?
  public var kind: NotificationKind
  /// Where it went, with secrets left out (a webhook's scheme, host and path only).
  public var target: String
  public var outcome: NotificationOutcome
  public var attempts: Int
  public var error: String?
  public var at: Date

  public init(
    runID: Int64?, job: String?, kind: NotificationKind, target: String, outcome: NotificationOutcome,
    attempts: Int, error: String?,
    at: Date = Date()
  ) {
    self.runID = runID
    self.job = job
    self.kind = kind
    self.target = target
    self.outcome = outcome
    self.attempts = attempts
    self.error = error
    self.at = at
  }
}

/// A host as the lock table knows it: by where it is reached, so two inventories naming the same
/// machine differently still exclude each other.
public struct HostLockKey: Sendable, Hashable {
  public var name: String
  public var key: String
  public init(name: String, address: String, port: Int?) {
    self.name = name
    key = "\(address.lowercased()):\(port ?? 22)"
  }
}

public struct LockHolder: Sendable, CustomStringConvertible {
  public var host: String
  public var runID: Int64
  public var job: String?
  public var startedBy: String
  public var trigger: RunTrigger

  public var description: String {
    "run \(runID) (\(job.map { "job '\($0)', " } ?? "")\(trigger.rawValue), started by \(startedBy))"
  }
}

/// A process, by PID and (on Linux) its start time, so a reused PID is not taken for it.
public struct ProcessIdentity: Sendable, Hashable {
  public var pid: Int32
  public var start: String

  public init(pid: Int32, start: String) {
    self.pid = pid
    self.start = start
  }

  public static var current: ProcessIdentity {
    let pid = getpid()
    return ProcessIdentity(pid: pid, start: startTime(of: pid) ?? "")
  }

  /// Field 22 of `/proc/PID/stat` (clock ticks since boot), or nil where there is no /proc.
  static func startTime(of pid: Int32) -> String? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = text.lastIndex(of: ")")
    else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command name, fields start at 3 (state): field 22 is at offset 19.
    return fields.count > 19 ? String(fields[19]) : nil
  }

  public var isAlive: Bool {
    if kill(pid, 0) != 0 && errno != EPERM { return false }
    if let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = text.lastIndex(of: ")"),
      text[text.index(after: close)...].split(separator: " ").first == "Z"
    {
      return false  // exited, not yet reaped
    }
    if start.isEmpty { return true }
    return Self.startTime(of: pid) == start
  }

  /// This machine's name (runs are only swept by the machine that started them).
  public static var machine: String {
    ProcessInfo.processInfo.hostName
  }
}

/// How a shard joins its run (`--shard I/N`).
public struct ShardJoin: Sendable, Equatable {
  /// The key the run's shards share.
  public var key: String
  /// 1 … count.
  public var shard: Int
  public var count: Int
  /// Derived from the run's inputs (no `--run-id`): a run whose shard already ended is over, and
  /// the same inputs then start a new run.
  public var derived: Bool

  public init(key: String, shard: Int, count: Int, derived: Bool) {
    self.key = key
    self.shard = shard
    self.count = count
    self.derived = derived
  }
}

/// One shard of a sharded run, as the history knows it.
public struct ShardRecord: Sendable {
  public var shard: Int
  /// `running` until it ends, then how it ended (as a run's status).
  public var status: RunStatus
  public var exitCode: Int?
  public var message: String?
  public var startedBy: String
  public var pid: Int
  public var startedAt: Date
  public var finishedAt: Date?
}
