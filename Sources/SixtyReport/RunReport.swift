import Foundation
import SixtyCore
import SixtyHistory

/// Everything a report says about one run. The JSON report, the JUnit XML and the HTML report
/// are all rendered from this one value, built either by the run itself as it ends or from the
/// history (`sixty runs report`).
public struct RunReport: Sendable {
  /// The run's id in the history, when it was recorded.
  public var runID: Int64?
  public var playbook: String
  public var started: Date
  public var finished: Date?
  /// The run's status as the history names it: `succeeded`, `failed`, `aborted`, …
  public var status: String
  public var exitCode: Int?
  /// Why the run ended as it did, when it did not simply complete.
  public var message: String?
  public var inventory: String?
  public var policy: String?
  public var limit: String?
  public var job: String?
  public var trigger: String?
  public var startedBy: String?
  /// The fingerprint of the public key the run pushed.
  public var keyFingerprint: String?
  /// True when task output is the last 4 KB of each stream (from the history); false when it
  /// is everything the run captured (up to its 1 MB cap per stream).
  public var outputIsTail: Bool
  public var plays: [Play]

  public struct Play: Sendable {
    public var name: String
    /// `completed`, `aborted`, `interrupted`, `timed out` (or `unknown` for a run recorded
    /// before plays were).
    public var outcome: String
    public var reason: String?
    /// How long a pushed key stays valid, in seconds.
    public var keyTTL: Double
    public var concurrency: Int?
    /// In inventory order. A task's `stdoutTail`/`stderrTail` hold its output (see
    /// `outputIsTail`).
    public var hosts: [HostRecord]

    public init(
      name: String, outcome: String, reason: String? = nil, keyTTL: Double, concurrency: Int? = nil,
      hosts: [HostRecord]
    ) {
      self.name = name
      self.outcome = outcome
      self.reason = reason
      self.keyTTL = keyTTL
      self.concurrency = concurrency
      self.hosts = hosts
    }
  }

  public init(
    runID: Int64? = nil, playbook: String, started: Date, finished: Date?, status: String, exitCode: Int?,
    message: String? = nil, inventory: String? = nil, policy: String? = nil, limit: String? = nil,
    job: String? = nil, trigger: String? = nil, startedBy: String? = nil, keyFingerprint: String? = nil,
    outputIsTail: Bool, plays: [Play]
  ) {
    self.runID = runID
    self.playbook = playbook
    self.started = started
    self.finished = finished
    self.status = status
    self.exitCode = exitCode
    self.message = message
    self.inventory = inventory
    self.policy = policy
    self.limit = limit
    self.job = job
    self.trigger = trigger
    self.startedBy = startedBy
    self.keyFingerprint = keyFingerprint
    self.outputIsTail = outputIsTail
    self.plays = plays
  }

  /// The report of run `id` from the history; nil when there is no such run.
  public static func load(from history: History, runID id: Int64) throws(HistoryError) -> RunReport? {
    guard let run = try history.run(id: id) else { return nil }
    let hosts = try history.hosts(runID: id)
    var plays = try history.plays(runID: id).map {
      Play(
        name: $0.name, outcome: $0.outcome, reason: $0.reason, keyTTL: $0.keyTTL, concurrency: $0.concurrency,
        hosts: [])
    }
    for host in hosts {
      if let index = plays.firstIndex(where: { $0.name == host.play }) {
        plays[index].hosts.append(host)
      } else {
        // A run recorded before its plays were: the play is known only by its hosts.
        plays.append(Play(name: host.play, outcome: "unknown", keyTTL: 60, hosts: [host]))
      }
    }
    return RunReport(
      runID: run.id, playbook: run.playbook, started: run.startedAt, finished: run.finishedAt,
      status: run.status, exitCode: run.exitCode, message: run.message, inventory: run.inventory,
      policy: run.policy, limit: run.limit, job: run.job, trigger: run.trigger, startedBy: run.startedBy,
      keyFingerprint: run.keyFingerprint, outputIsTail: true, plays: plays)
  }

  /// Every host of every play.
  public var allHosts: [HostRecord] { plays.flatMap(\.hosts) }

  // MARK: - JSON

  /// The JSON report (`--report`): the machine format, documented in the README.
  public func json() -> [UInt8] {
    var w = JSONWriter()
    let iso = ISO8601DateFormatter()
    iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    w.beginObject()
    if let runID { w.field("run_id", Int(runID)) }
    w.field("playbook", playbook)
    w.field("started", iso.string(from: started))
    if let finished { w.field("finished", iso.string(from: finished)) }
    w.field("status", status)
    if let exitCode { w.field("exit_code", exitCode) }
    if let message { w.field("message", message) }
    if let inventory { w.field("inventory", inventory) }
    if let policy { w.field("policy", policy) }
    if let limit { w.field("limit", limit) }
    if let job { w.field("job", job) }
    if let trigger { w.field("trigger", trigger) }
    if let startedBy { w.field("started_by", startedBy) }
    if let keyFingerprint { w.field("key_fingerprint", keyFingerprint) }
    w.field("output", outputIsTail ? "tail" : "complete")
    w.key("plays")
    w.beginArray()
    for play in plays {
      w.beginObject()
      w.field("name", play.name)
      w.field("outcome", play.outcome)
      if let reason = play.reason { w.field("reason", reason) }
      w.field("key_ttl_seconds", play.keyTTL)
      if let concurrency = play.concurrency { w.field("concurrency", concurrency) }
      w.key("hosts")
      w.beginObject()
      for host in play.hosts {
        w.key(host.host)
        w.beginObject()
        w.field("status", host.status)
        if let message = host.message { w.field("message", message) }
        if !host.address.isEmpty { w.field("address", host.address) }
        w.field("user", host.user)
        w.field("reconnects", host.reconnects)
        w.key("pushes")
        w.beginArray()
        for push in host.pushes { w.value(iso.string(from: push)) }
        w.endArray()
        if let auth = host.authenticatedAt {
          w.field("authenticated", iso.string(from: auth))
          if let ms = host.pushToAuthMilliseconds { w.field("push_to_auth_ms", ms) }
        }
        if let started = host.startedAt { w.field("started", iso.string(from: started)) }
        if let finished = host.finishedAt { w.field("finished", iso.string(from: finished)) }
        w.key("tasks")
        w.beginArray()
        for task in host.tasks {
          w.beginObject()
          w.field("name", task.name)
          w.field("status", task.status)
          if task.status == "ok" { w.field("exit", Int(task.exitStatus ?? 0)) }
          if let reason = task.reason { w.field("reason", reason) }
          w.field("attempts", task.attempts)
          if let started = task.startedAt { w.field("started", iso.string(from: started)) }
          if let ended = task.finishedAt { w.field("ended", iso.string(from: ended)) }
          if let code = task.exitStatus { w.field("exit_status", Int(code)) }
          if task.startedAt != nil || task.stdoutTail != nil {
            w.field("stdout", task.stdoutTail ?? "")
            w.field("stderr", task.stderrTail ?? "")
          }
          w.endObject()
        }
        w.endArray()
        w.endObject()
      }
      w.endObject()
      w.endObject()
    }
    w.endArray()
    w.endObject()
    return w.bytes + [UInt8(ascii: "\n")]
  }
}
