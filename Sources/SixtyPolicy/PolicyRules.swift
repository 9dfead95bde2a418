import SixtyCore

/// A command pattern that policy refuses, checked against each rendered command.
public struct CommandRule: Hashable, Sendable {
  public enum Pattern: Hashable, Sendable {
    /// Matches when the command contains this text (whitespace runs compared as one space).
    case literal(String)
    /// Matches when the regular expression matches anywhere in the command.
    case regex(String)
  }

  public var pattern: Pattern
  public var reason: String?
  public var location: SourceLocation?

  public init(pattern: Pattern, reason: String? = nil, location: SourceLocation? = nil) {
    self.pattern = pattern
    self.reason = reason
    self.location = location
  }

  public var patternText: String {
    switch pattern {
    case .literal(let text): "'\(text)'"
    case .regex(let text): "/\(text)/"
    }
  }
}

/// Hosts matching `selector` may only be targeted with `--approve`.
public struct ApprovalRule: Hashable, Sendable {
  public var selector: HostSelector
  public var reason: String?
  public var location: SourceLocation?

  public init(selector: HostSelector, reason: String? = nil, location: SourceLocation? = nil) {
    self.selector = selector
    self.reason = reason
    self.location = location
  }
}

/// When hosts may be started: a cron schedule opening a window of `duration`; no new host starts
/// within `cutoff` of its end. Evaluated by the scheduler in `timeZone`.
public struct MaintenanceWindow: Hashable, Sendable {
  public var name: String
  public var schedule: String
  public var duration: TimeSpan
  public var cutoff: TimeSpan
  public var timeZone: String
  public var location: SourceLocation?

  public init(
    name: String, schedule: String, duration: TimeSpan, cutoff: TimeSpan = .seconds(0),
    timeZone: String = "UTC",
    location: SourceLocation? = nil
  ) {
    self.name = name
    self.schedule = schedule
    self.duration = duration
    self.cutoff = cutoff
    self.timeZone = timeZone
    self.location = location
  }
}

/// How ssh treats unknown host keys.
public enum HostKeyPolicy: String, Hashable, Sendable, CaseIterable {
  /// Record new keys in Sixty's own known_hosts, refuse changed ones.
  case acceptNew = "accept-new"
  case strict
  case off
}
