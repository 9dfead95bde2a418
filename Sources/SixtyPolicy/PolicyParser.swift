import SixtyCore

/// Reads policy from YAML: an organisation policy file or a play's `policy:` mapping.
public enum PolicyParser {
  public static let keys = [
    "concurrency", "batches", "max_failures", "timeouts", "retries", "retry_delay", "push",
    "host_parallelism",
    "host_key_checking", "ssh_client", "host_lock", "windows", "commands", "hosts",
  ]

  /// Loads an organisation policy file.
  /// - Returns: the policy and every diagnostic found (the policy is nil when the file is unusable).
  public static func load(path: String) -> (Policy?, [Diagnostic]) {
    let (root, diagnostics) = YAMLLoader.load(path: path)
    guard let root else {
      if diagnostics.isEmpty {
        return (Policy(), [])  // An empty policy file sets nothing.
      }
      return (nil, diagnostics)
    }
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    var policy = parse(root, what: "the policy file", reader: &reader)
    policy.source = path
    return (policy, reader.diagnostics.all)
  }

  /// Reads a policy mapping, recording problems in `reader`.
  public static func parse(_ node: YAMLNode, what: String, reader: inout NodeReader) -> Policy {
    var policy = Policy()
    guard let pairs = reader.mapping(node, what, allowed: keys) else { return policy }
    for pair in pairs {
      let value = pair.value
      policy.locations[pair.key] = value.location
      switch pair.key {
      case "concurrency":
        policy.concurrency = reader.int(value, "'concurrency'", range: 1...100_000)
      case "batches":
        policy.batches = batches(value, reader: &reader)
      case "max_failures":
        policy.maxFailures = quantity(value, "'max_failures'", reader: &reader)
      case "timeouts":
        guard let entries = reader.mapping(value, "'timeouts'", allowed: ["connect", "task", "run", "lock"])
        else {
          continue
        }
        for entry in entries {
          policy.locations["timeouts.\(entry.key)"] = entry.value.location
          let span = positiveSpan(entry.value, "'timeouts.\(entry.key)'", reader: &reader)
          switch entry.key {
          case "connect": policy.connectTimeout = span
          case "task": policy.taskTimeout = span
          case "lock": policy.lockTimeout = span
          default: policy.runTimeout = span
          }
        }
      case "retries":
        policy.retries = reader.int(value, "'retries'", range: 0...100)
      case "retry_delay":
        policy.retryDelay = reader.timeSpan(value, "'retry_delay'")
      case "push":
        guard
          let entries = reader.mapping(
            value, "'push'", allowed: ["rate", "burst", "ttl", "margin", "key_type", "mode"])
        else {
          continue
        }
        for entry in entries {
          policy.locations["push.\(entry.key)"] = entry.value.location
          switch entry.key {
          case "rate":
            if let text = entry.value.scalar, let rate = Double(text.trimmingWhitespace()), rate > 0,
              rate <= 100_000
            {
              policy.pushRate = rate
            } else {
              reader.error(
                "expected a positive number of pushes per second for 'push.rate', found \(entry.value.scalar.map { "'\($0)'" } ?? entry.value.kindDescription).",
                at: entry.value.location)
            }
          case "burst": policy.pushBurst = reader.int(entry.value, "'push.burst'", range: 1...100_000)
          case "ttl": policy.keyTTL = positiveSpan(entry.value, "'push.ttl'", reader: &reader)
          case "key_type":
            policy.keyType = reader.string(entry.value, "'push.key_type'", as: LoginKeyType.init(rawValue:)) {
              "unknown push.key_type '\($0)'; expected one of: \(LoginKeyType.allCases.map(\.rawValue).joined(separator: ", "))."
            }
          case "mode":
            policy.loginMode = reader.string(entry.value, "'push.mode'", as: LoginMode.init(rawValue:)) {
              "unknown push.mode '\($0)'; expected one of: key, certificate."
            }
          default: policy.keyMargin = reader.timeSpan(entry.value, "'push.margin'")
          }
        }
      case "host_parallelism":
        policy.hostParallelism = reader.int(value, "'host_parallelism'", range: 1...9)
      case "host_key_checking":
        policy.hostKeyPolicy = reader.string(value, "'host_key_checking'", as: HostKeyPolicy.init(rawValue:))
        {
          "unknown host_key_checking '\($0)'; expected one of: accept-new, strict, off."
        }
      case "ssh_client":
        policy.sshClient = reader.string(value, "'ssh_client'", as: SSHClientChoice.init(rawValue:)) {
          "unknown ssh_client '\($0)'; expected one of: auto, openssh."
        }
      case "host_lock":
        policy.locations["host_lock"] = value.location
        policy.hostLock = reader.string(value, "'host_lock'", as: HostLockMode.init(rawValue:)) {
          "unknown host_lock '\($0)'; expected wait or refuse."
        }
      case "windows":
        policy.windows = windows(value, reader: &reader)
      case "commands":
        guard let entries = reader.mapping(value, "'commands'", allowed: ["deny"]) else { continue }
        for entry in entries { policy.denyCommands = commandRules(entry.value, reader: &reader) }
      case "hosts":
        guard let entries = reader.mapping(value, "'hosts'", allowed: ["require_approval"]) else { continue }
        for entry in entries { policy.requireApproval = approvalRules(entry.value, reader: &reader) }
      default:
        break
      }
    }
    if let ttl = policy.keyTTL, let margin = policy.keyMargin, margin >= ttl {
      reader.error(
        "'push.margin' (\(margin)) must be shorter than 'push.ttl' (\(ttl)) so a pushed key leaves time to authenticate.",
        at: policy.locations["push.margin"])
    }
    return policy
  }

  static func positiveSpan(_ node: YAMLNode, _ what: String, reader: inout NodeReader) -> TimeSpan? {
    guard let span = reader.timeSpan(node, what) else { return nil }
    guard span.milliseconds > 0 else {
      reader.error("\(what) must be longer than zero.", at: node.location)
      return nil
    }
    return span
  }

  static func quantity(_ node: YAMLNode, _ what: String, reader: inout NodeReader) -> Quantity? {
    guard let text = node.scalar, let quantity = Quantity(parsing: text) else {
      reader.error(
        "expected a number of hosts or a percentage for \(what) (like 2 or 10%), found \(node.scalar.map { "'\($0)'" } ?? node.kindDescription).",
        at: node.location)
      return nil
    }
    return quantity
  }

  static func batches(_ node: YAMLNode, reader: inout NodeReader) -> [Quantity]? {
    let items = node.items ?? [node]
    var result: [Quantity] = []
    for item in items {
      guard let quantity = quantity(item, "each entry of 'batches'", reader: &reader) else { continue }
      if quantity == .count(0) || quantity == .percent(0) {
        reader.error("a batch of zero hosts never finishes; expected at least 1 or 1%.", at: item.location)
        continue
      }
      result.append(quantity)
    }
    if items.isEmpty { reader.error("expected at least one batch size in 'batches'.", at: node.location) }
    return result
  }

  static func windows(_ node: YAMLNode, reader: inout NodeReader) -> [MaintenanceWindow] {
    guard let items = reader.list(node, of: "windows", for: "'windows'") else { return [] }
    var result: [MaintenanceWindow] = []
    for (index, item) in items.enumerated() {
      guard
        let pairs = reader.mapping(
          item, "a maintenance window", allowed: ["name", "schedule", "duration", "cutoff", "timezone"])
      else { continue }
      var name = "window-\(index + 1)"
      var schedule: String?
      var duration: TimeSpan?
      var cutoff = TimeSpan.seconds(0)
      var zone = "UTC"
      for pair in pairs {
        switch pair.key {
        case "name": name = reader.string(pair.value, "'name'") ?? name
        case "schedule":
          schedule = reader.string(pair.value, "'schedule'")
          if let text = schedule, text.split(separator: " ").count < 5, !text.hasPrefix("@"),
            !text.hasPrefix("cron("), !text.hasPrefix("rate(")
          {
            reader.error(
              "the window schedule '\(text)' is not a cron expression; expected five fields like '0 2 * * *', a macro like '@daily', or 'cron(…)'.",
              at: pair.value.location)
          }
        case "duration": duration = positiveSpan(pair.value, "'duration'", reader: &reader)
        case "cutoff": cutoff = reader.timeSpan(pair.value, "'cutoff'") ?? cutoff
        default:
          zone =
            reader.string(pair.value, "'timezone'", where: TimeZoneCheck.isKnown) {
              "unknown time zone '\($0)'; expected an IANA name like 'UTC' or 'Europe/Berlin'."
            } ?? zone
        }
      }
      guard let schedule else {
        reader.error(
          "the maintenance window '\(name)' has no 'schedule'; expected a cron expression.", at: item.location
        )
        continue
      }
      guard let duration else {
        reader.error(
          "the maintenance window '\(name)' has no 'duration'; expected a length like 2h.", at: item.location)
        continue
      }
      if cutoff >= duration {
        reader.error(
          "the cutoff (\(cutoff)) of window '\(name)' is not shorter than its duration (\(duration)); no host could ever start.",
          at: item.location)
      }
      result.append(
        MaintenanceWindow(
          name: name, schedule: schedule, duration: duration, cutoff: cutoff, timeZone: zone,
          location: item.location))
    }
    return result
  }

  static func commandRules(_ node: YAMLNode, reader: inout NodeReader) -> [CommandRule] {
    guard let items = reader.list(node, of: "patterns", for: "'commands.deny'") else { return [] }
    var rules: [CommandRule] = []
    for item in items {
      if let text = item.scalar, !item.isNull {
        if literalIsCommand(text, item.location, &reader) {
          rules.append(CommandRule(pattern: .literal(text), location: item.location))
        }
        continue
      }
      guard let pairs = reader.mapping(item, "a command rule", allowed: ["literal", "regex", "reason"]) else {
        continue
      }
      var pattern: CommandRule.Pattern?
      var reason: String?
      for pair in pairs {
        switch pair.key {
        case "literal":
          if let text = reader.string(pair.value, "'literal'"),
            literalIsCommand(text, pair.value.location, &reader)
          {
            pattern = .literal(text)
          }
        case "regex":
          if let text = reader.string(pair.value, "'regex'") {
            if let problem = CommandMatcher.regexProblem(text) {
              reader.error("invalid regular expression /\(text)/: \(problem).", at: pair.value.location)
            } else {
              pattern = .regex(text)
            }
          }
        default: reason = reader.string(pair.value, "'reason'")
        }
      }
      if let pattern {
        rules.append(CommandRule(pattern: pattern, reason: reason, location: item.location))
      } else if pairs.allSatisfy({ $0.key == "reason" }) {
        reader.error("a command rule needs 'literal' or 'regex'.", at: item.location)
      }
    }
    return rules
  }

  /// A literal deny rule is a command line, parsed like the commands it is checked against.
  static func literalIsCommand(_ text: String, _ location: SourceLocation, _ reader: inout NodeReader) -> Bool
  {
    guard let problem = CommandMatcher.literalProblem(text) else { return true }
    reader.error(
      "the deny rule \(SafeText.quoted(text)) is not a command line Sixty can parse (\(problem)); expected words like \"rm -rf /\", or use regex: for a text pattern.",
      at: location)
    return false
  }

  static func approvalRules(_ node: YAMLNode, reader: inout NodeReader) -> [ApprovalRule] {
    guard let entries = reader.stringList(node, "'hosts.require_approval'") else { return [] }
    var rules: [ApprovalRule] = []
    for (text, location) in entries {
      do {
        rules.append(ApprovalRule(selector: try HostSelector(parsing: text), location: location))
      } catch {
        reader.error(error.message, at: location.advanced(by: error.offset))
      }
    }
    return rules
  }
}
