import SixtyCore

/// Combines built-in defaults, the organisation policy and a play's own policy.
///
/// The organisation policy wins: a play may tighten any limit but never loosen it. A looser
/// value in the play is replaced by the organisation's, with a warning at the play's value.
public enum PolicyResolver {
  public static func resolve(organisation: Policy?, play: Policy?) -> (EffectivePolicy, [Diagnostic]) {
    var result = Policy.defaults
    var diagnostics: [Diagnostic] = []
    let org = organisation ?? Policy()
    let own = play ?? Policy()

    func pick<T: Comparable & CustomStringConvertible>(
      _ key: String, _ orgValue: T?, _ ownValue: T?, default value: T, tighterIsSmaller: Bool = true
    ) -> T {
      guard let ownValue else { return orgValue ?? value }
      guard let orgValue else { return ownValue }
      let looser = tighterIsSmaller ? ownValue > orgValue : ownValue < orgValue
      if looser {
        diagnostics.append(
          .warning(
            "the play's \(key) \(ownValue) is looser than the organisation policy's \(orgValue)\(org.locations[key].map { " (\($0))" } ?? ""); using \(orgValue).",
            at: own.locations[key]))
        return orgValue
      }
      return ownValue
    }

    result.concurrency = pick("concurrency", org.concurrency, own.concurrency, default: result.concurrency)
    result.connectTimeout = pick(
      "timeouts.connect", org.connectTimeout, own.connectTimeout, default: result.connectTimeout)
    result.taskTimeout = pick("timeouts.task", org.taskTimeout, own.taskTimeout, default: result.taskTimeout)
    if own.runTimeout != nil || org.runTimeout != nil {
      result.runTimeout = pick(
        "timeouts.run", org.runTimeout, own.runTimeout, default: TimeSpan.hours(24 * 365))
    }
    if org.pushRate != nil || own.pushRate != nil {
      result.pushRate =
        pick(
          "push.rate", org.pushRate.map(Rate.init), own.pushRate.map(Rate.init), default: Rate(.infinity)
        ).value
    }
    if org.pushBurst != nil || own.pushBurst != nil {
      result.pushBurst = pick("push.burst", org.pushBurst, own.pushBurst, default: Int.max)
    }
    result.keyTTL = pick("push.ttl", org.keyTTL, own.keyTTL, default: result.keyTTL)
    result.keyMargin = pick(
      "push.margin", org.keyMargin, own.keyMargin, default: result.keyMargin, tighterIsSmaller: false)
    // A key type or login mode the organisation sets is the one used (security teams may
    // require one).
    func organisationWins<T: RawRepresentable & Equatable>(_ key: String, _ orgValue: T?, _ ownValue: T?)
      -> T?
    where T.RawValue == String {
      if let orgValue, let ownValue, orgValue != ownValue {
        diagnostics.append(
          .warning(
            "the play's \(key) '\(ownValue.rawValue)' differs from the organisation policy's '\(orgValue.rawValue)'\(org.locations[key].map { " (\($0))" } ?? ""); using '\(orgValue.rawValue)'.",
            at: own.locations[key]))
      }
      return orgValue ?? ownValue
    }
    result.keyType = organisationWins("push.key_type", org.keyType, own.keyType)
    result.loginMode = organisationWins("push.mode", org.loginMode, own.loginMode)
    result.sshClient = organisationWins("ssh_client", org.sshClient, own.sshClient) ?? result.sshClient
    result.hostParallelism = pick(
      "host_parallelism", org.hostParallelism, own.hostParallelism, default: result.hostParallelism)
    // Retries and their delay are defaults, not limits: the play's own values win.
    result.retries = own.retries ?? org.retries ?? result.retries
    result.retryDelay = own.retryDelay ?? org.retryDelay ?? result.retryDelay
    if let orgMode = org.hostKeyPolicy, let ownMode = own.hostKeyPolicy,
      strictness(ownMode) < strictness(orgMode)
    {
      diagnostics.append(
        .warning(
          "the play's host_key_checking '\(ownMode.rawValue)' is looser than the organisation policy's '\(orgMode.rawValue)'; using '\(orgMode.rawValue)'.",
          at: own.locations["host_key_checking"]))
      result.hostKeyPolicy = orgMode
    } else {
      result.hostKeyPolicy = own.hostKeyPolicy ?? org.hostKeyPolicy ?? result.hostKeyPolicy
    }
    // The organisation's refuse wins over a play's wait; the shorter lock timeout wins.
    result.hostLock = org.hostLock == .refuse ? .refuse : (own.hostLock ?? org.hostLock ?? result.hostLock)
    result.lockTimeout = pick("timeouts.lock", org.lockTimeout, own.lockTimeout, default: result.lockTimeout)
    result.batches = own.batches ?? org.batches ?? []
    result.orgBatches = own.batches != nil ? (org.batches ?? []) : []
    result.maxFailures = own.maxFailures ?? org.maxFailures
    result.orgMaxFailures = own.maxFailures != nil ? org.maxFailures : nil
    result.windows = own.windows
    result.organisationWindows = org.windows
    result.denyCommands = org.denyCommands + own.denyCommands
    result.requireApproval = org.requireApproval + own.requireApproval
    if result.keyMargin >= result.keyTTL {
      diagnostics.append(
        .error(
          "the key margin (\(result.keyMargin)) is not shorter than the key TTL (\(result.keyTTL)); a pushed key would never leave time to authenticate.",
          at: own.locations["push.margin"] ?? org.locations["push.margin"] ?? own.locations["push.ttl"]))
    }
    return (result, diagnostics)
  }

  static func strictness(_ mode: HostKeyPolicy) -> Int {
    switch mode {
    case .off: 0
    case .acceptNew: 1
    case .strict: 2
    }
  }

  struct Rate: Comparable, CustomStringConvertible {
    var value: Double
    init(_ value: Double) { self.value = value }
    static func < (a: Rate, b: Rate) -> Bool { a.value < b.value }
    var description: String {
      value == value.rounded() ? "\(Int(value))/s" : "\(value)/s"
    }
  }
}
