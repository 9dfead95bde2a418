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

/// How a play's hosts let the run's key in (`push.mode`).
public enum LoginMode: String, Hashable, Sendable, CaseIterable {
  /// The key is pushed (`SendSSHPublicKey`) and each login asks the broker or AWS for it
  /// (sshd's AuthorizedKeysCommand): what AWS EC2 Instance Connect does.
  case key
  /// A `sixty broker` signs a 60-second certificate for the key (`SignSSHPublicKey`), which the
  /// host checks on its own (`TrustedUserCAKeys`, `AuthorizedPrincipalsFile`).
  case certificate
}

/// Which SSH client logs in (`ssh_client`).
public enum SSHClientChoice: String, Hashable, Sendable, CaseIterable {
  /// Sixty's built-in client wherever it reaches a host as OpenSSH's `ssh` would (no ssh_config
  /// setting, no ssh options, a key type it signs with), OpenSSH everywhere else.
  case auto
  /// The system's `ssh` for every host.
  case openssh
}

/// The kind of ephemeral key a play's hosts log in with (`push.key_type`).
public enum LoginKeyType: String, Hashable, Sendable, CaseIterable {
  /// RSA 2048, the default. Sixty writes it as a PEM file with no public key beside it, from which
  /// ssh cannot read the public half, so ssh signs with it at once instead of first asking the
  /// host whether it would accept the key: each login runs the host's AuthorizedKeysCommand (and
  /// asks the broker) once instead of twice.
  case rsa
  /// RSA 4096, for organisations that require it; slower to generate (about a second).
  case rsa4096
  /// Ed25519: ssh can always read its public half, so it asks the host first (two
  /// AuthorizedKeysCommand runs per login).
  case ed25519
  /// ECDSA P-256, written as a PKCS#8 PEM file: like RSA, ssh signs with it at once, and it is
  /// the cheapest to make (microseconds, against tens of milliseconds for RSA 2048) and to sign
  /// with. Accepted by `sixty broker`; AWS EC2 Instance Connect documents RSA and Ed25519 only.
  case ecdsa

  /// How the plan names it.
  public var description: String {
    switch self {
    case .rsa: "RSA 2048"
    case .rsa4096: "RSA 4096"
    case .ed25519: "Ed25519"
    case .ecdsa: "ECDSA P-256"
    }
  }
}

/// How ssh treats unknown host keys.
public enum HostKeyPolicy: String, Hashable, Sendable, CaseIterable {
  /// Record new keys in Sixty's own known_hosts, refuse changed ones.
  case acceptNew = "accept-new"
  case strict
  case off
}
