import SixtyCore

/// Policy as written in one place (an organisation file or a play's `policy:`); unset fields are nil.
public struct Policy: Sendable {
  public var concurrency: Int?
  public var batches: [Quantity]?
  public var maxFailures: Quantity?
  public var connectTimeout: TimeSpan?
  public var taskTimeout: TimeSpan?
  public var runTimeout: TimeSpan?
  public var retries: Int?
  public var retryDelay: TimeSpan?
  /// A ceiling on key pushes per second across the whole run (token bucket rate) and its burst;
  /// unset, pushes are paced adaptively (`AdaptivePacer`) with no ceiling.
  public var pushRate: Double?
  public var pushBurst: Int?
  public var keyTTL: TimeSpan?
  public var keyMargin: TimeSpan?
  /// The kind of ephemeral key (`push.key_type`).
  public var keyType: LoginKeyType?
  /// Pushed keys or certificates (`push.mode`).
  public var loginMode: LoginMode?
  /// Which SSH client logs in (`ssh_client`).
  public var sshClient: SSHClientChoice?
  /// Tasks of one host that may run at once over its connection.
  public var hostParallelism: Int?
  public var hostKeyPolicy: HostKeyPolicy?
  /// What a run does when another run holds one of its hosts.
  public var hostLock: HostLockMode?
  /// How long `host_lock: wait` waits.
  public var lockTimeout: TimeSpan?
  public var windows: [MaintenanceWindow] = []
  public var denyCommands: [CommandRule] = []
  public var requireApproval: [ApprovalRule] = []
  /// Where each field was set, keyed by its YAML name, for diagnostics.
  public var locations: [String: SourceLocation] = [:]
  /// The file this policy came from, if any.
  public var source: String?

  public init() {}

  /// Built-in defaults used where neither the organisation nor the playbook says otherwise.
  public static let defaults: EffectivePolicy = EffectivePolicy(
    concurrency: 10, batches: [], maxFailures: nil, connectTimeout: .seconds(10), taskTimeout: .hours(1),
    runTimeout: nil, retries: 0, retryDelay: .seconds(5), pushRate: nil, pushBurst: nil,
    keyTTL: .seconds(60), keyMargin: .seconds(15), keyType: nil, loginMode: nil, sshClient: .auto,
    hostParallelism: 1,
    hostKeyPolicy: .acceptNew, windows: [],
    organisationWindows: [],
    denyCommands: [], requireApproval: [], orgBatches: [], orgMaxFailures: nil, hostLock: .wait,
    lockTimeout: .minutes(10))
}

/// The policy a play runs under, after applying defaults, the organisation policy and the play's own.
public struct EffectivePolicy: Sendable, Hashable {
  public var concurrency: Int
  /// Rolling batch sizes; empty means one batch with every host. The last entry repeats.
  public var batches: [Quantity]
  public var maxFailures: Quantity?
  public var connectTimeout: TimeSpan
  public var taskTimeout: TimeSpan
  public var runTimeout: TimeSpan?
  public var retries: Int
  public var retryDelay: TimeSpan
  /// The ceiling on pushes per second and its burst (nil: adaptive pacing only; a burst without a
  /// rate is ignored).
  public var pushRate: Double?
  public var pushBurst: Int?
  public var keyTTL: TimeSpan
  public var keyMargin: TimeSpan
  /// nil: the fastest type the endpoint takes (`KeyTypeChoice`).
  public var keyType: LoginKeyType?
  /// nil: what the endpoint prefers (a `sixty broker` with `certificates: {prefer: true}` says
  /// certificates; every other endpoint takes pushed keys).
  public var loginMode: LoginMode?
  /// `auto`: the built-in client where it can stand in for OpenSSH (`SSHConfigCheck`).
  public var sshClient: SSHClientChoice
  public var hostParallelism: Int
  public var hostKeyPolicy: HostKeyPolicy
  /// The play's own windows (a host starts only when one of them is open, if any are given).
  public var windows: [MaintenanceWindow]
  /// The organisation's windows, which apply as well.
  public var organisationWindows: [MaintenanceWindow]
  public var denyCommands: [CommandRule]
  public var requireApproval: [ApprovalRule]
  /// The organisation's batch sizes, which cap the play's step by step.
  public var orgBatches: [Quantity]
  /// The organisation's failure threshold, which caps the play's.
  public var orgMaxFailures: Quantity?
  /// What a run does when another run (a scheduled job, another operator) holds one of its hosts.
  public var hostLock: HostLockMode
  public var lockTimeout: TimeSpan

  /// Rolling batch sizes for `total` hosts: each step of the play's list capped by the organisation's.
  public func batchSizes(for total: Int) -> [Int] {
    guard total > 0 else { return [] }
    var sizes: [Int] = []
    var remaining = total
    var index = 0
    while remaining > 0 {
      var size = total
      if !batches.isEmpty { size = batches[min(index, batches.count - 1)].batchSize(of: total) }
      if !orgBatches.isEmpty {
        size = min(size, orgBatches[min(index, orgBatches.count - 1)].batchSize(of: total))
      }
      size = min(size, remaining)
      sizes.append(size)
      remaining -= size
      index += 1
    }
    return sizes
  }

  /// The number of failed hosts tolerated for `total` hosts; the run aborts when it is exceeded.
  public func failureThreshold(for total: Int) -> Int? {
    let own = maxFailures?.threshold(of: total)
    let org = orgMaxFailures?.threshold(of: total)
    switch (own, org) {
    case (nil, nil): return nil
    case (let a?, nil): return a
    case (nil, let b?): return b
    case (let a?, let b?): return min(a, b)
    }
  }
}

/// What a run does when another run holds one of its hosts (policy `host_lock`).
public enum HostLockMode: String, Hashable, Sendable, CaseIterable {
  /// Wait (up to `timeouts.lock`) for the other run to finish.
  case wait
  /// Refuse to start at once (exit 3).
  case refuse
}
