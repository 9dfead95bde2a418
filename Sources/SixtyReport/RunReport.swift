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
  public var status: RunStatus
  public var exitCode: Int?
  /// Why the run ended as it did, when it did not simply complete.
  public var message: String?
  public var inventory: String?
  public var policy: String?
  public var limit: String?
  public var job: String?
  public var trigger: RunTrigger?
  public var startedBy: String?
  /// The fingerprint of the public key the run pushed.
  public var keyFingerprint: String?
  /// How the run's keys were chosen and its pushes paced (a run's own report; not in the history).
  public var pushes: Pushes?
  /// True when task output is the last 4 KB of each stream (from the history); false when it
  /// is everything the run captured (up to its 1 MB cap per stream).
  public var outputIsTail: Bool
  public var plays: [Play]

  public struct Pushes: Sendable, Equatable {
    /// `key` (pushed keys) or `certificate` (certificates signed by the broker).
    public var mode: String
    /// The key type (`ecdsa`, `rsa`, …) and why it was chosen.
    public var keyType: String
    public var keyTypeReason: String
    /// Requests sent to the endpoint, throttled answers, and how often the pace was lowered.
    public var requests: Int
    public var throttled: Int
    public var lowered: Int
    /// The pace at the end and its lowest (pushes per second; nil while never paced).
    public var rate: Double?
    public var lowestRate: Double?
    /// The smoothed rate requests were sent at.
    public var measuredRate: Double
    /// The policy's ceiling (push.rate), if any.
    public var ceiling: Double?

    public init(
      mode: String = "key", keyType: String, keyTypeReason: String, requests: Int, throttled: Int,
      lowered: Int, rate: Double?,
      lowestRate: Double?, measuredRate: Double, ceiling: Double?
    ) {
      self.mode = mode
      self.keyType = keyType
      self.keyTypeReason = keyTypeReason
      self.requests = requests
      self.throttled = throttled
      self.lowered = lowered
      self.rate = rate
      self.lowestRate = lowestRate
      self.measuredRate = measuredRate
      self.ceiling = ceiling
    }

    /// `adaptive, 212 requests, 12 throttled, lowered 2 times, ending at 31.4/s (lowest 22.0/s)`.
    public var pacingText: String {
      var text = (mode == "certificate" ? "certificates, " : "") + "adaptive"
      if let ceiling { text += " under a ceiling of \(Self.format(ceiling))/s" }
      text += ", \(requests) request\(requests == 1 ? "" : "s"), \(throttled) throttled"
      if lowered > 0 { text += ", lowered \(lowered) time\(lowered == 1 ? "" : "s")" }
      if let rate {
        text += ", ending at \(Self.format(rate))/s"
        if let lowestRate, lowestRate < rate { text += " (lowest \(Self.format(lowestRate))/s)" }
      } else {
        text += ", never slowed"
      }
      return text
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }
  }

  public struct Play: Sendable {
    public var name: String
    /// `unknown` for a run recorded before plays were.
    public var outcome: PlayOutcome
    public var reason: String?
    /// How long a pushed key stays valid, in seconds.
    public var keyTTL: Double
    public var concurrency: Int?
    /// In inventory order. A task's `stdoutTail`/`stderrTail` hold its output (see
    /// `outputIsTail`).
    public var hosts: [HostRecord]

    public init(
      name: String, outcome: PlayOutcome, reason: String? = nil, keyTTL: Double, concurrency: Int? = nil,
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
    runID: Int64? = nil, playbook: String, started: Date, finished: Date?, status: RunStatus, exitCode: Int?,
    message: String? = nil, inventory: String? = nil, policy: String? = nil, limit: String? = nil,
    job: String? = nil, trigger: RunTrigger? = nil, startedBy: String? = nil, keyFingerprint: String? = nil,
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
    return RunReport(run: run, plays: try history.plays(runID: id), hosts: try history.hosts(runID: id))
  }

  /// The report of a recorded run: its hosts grouped by play (task output is the history's tails).
  public init(run: RunRecord, plays records: [PlayRecord], hosts: [HostRecord]) {
    var plays = records.map {
      Play(
        name: $0.name, outcome: $0.outcome, reason: $0.reason, keyTTL: $0.keyTTL, concurrency: $0.concurrency,
        hosts: [])
    }
    for host in hosts {
      if let index = plays.firstIndex(where: { $0.name == host.play }) {
        plays[index].hosts.append(host)
      } else {
        // A run recorded before its plays were: the play is known only by its hosts.
        plays.append(Play(name: host.play, outcome: .unknown, keyTTL: 60, hosts: [host]))
      }
    }
    self.init(
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
    RunDocument.write(self, to: &w)
    return w.bytes + [UInt8(ascii: "\n")]
  }
}
