import Foundation
import SixtyExecution
import SixtyHistory
import SixtyPlanning
import SixtyPlaybook

/// Everything one run needs to know before it starts: what to run, where, with which limits, what
/// to write and how to record it. `sixty run`, `sixty exec`, `sixty runs rerun` and the jobs daemon
/// each build one; `Runner.run(_:console:)` does the rest. Codable, so the jobs daemon can hand it
/// to the `sixty run` process it starts.
public struct RunRequest: Sendable, Codable, Equatable {
  /// A playbook file, or one command across the hosts a selector picks (`sixty exec`).
  public enum Source: Sendable, Codable, Equatable {
    case playbook(path: String)
    case command(AdHocCommand)
  }

  public var source: Source
  /// The inventory file; nil falls back to `SIXTY_INVENTORY`.
  public var inventory: String?
  /// The organisation policy file; nil falls back to `SIXTY_POLICY`.
  public var policy: String?
  /// `--limit`, or the hosts a rerun targets.
  public var limit: HostLimit?
  /// `-e KEY=VALUE`, in the order given. Values are never recorded.
  public var extraVars: [ExtraVariable] = []
  /// Approve hosts that policy marks as requiring approval.
  public var approve = false
  public var ec2 = EC2Settings()
  public var connect = ConnectSettings()
  /// Hosts at once (caps the policy's concurrency).
  public var forks: Int?
  /// Print the plan and touch nothing.
  public var dryRun = false
  public var reports = ReportPaths()
  /// Print each task's output grouped at the end, identical outputs merged.
  public var groupOutput = false
  /// A live status line on a terminal.
  public var progress = true
  /// The ssh program.
  public var ssh = "ssh"
  /// `-F`, `-J`, `-o` and `-u` for every ssh of the run.
  public var sshClient = SSHClientSettings()
  /// `-v` (1) prints more of what the run does, `-vv` (2) its ssh command lines and timings too.
  public var verbosity = 0
  /// No host starts after this time (`--not-after`, a job's window).
  public var notAfter: Date?
  public var history = HistorySettings()
  /// `--shard I/N`: run only this part of the targets, as one shard of a run shared through the
  /// history.
  public var shard: Shard?
  /// `--run-id`: the key the shards of one run share; nil derives it from the run's inputs.
  public var runKey: String?

  public init(source: Source) { self.source = source }

  /// The playbook as the user knows it: its path, or "sixty exec".
  public var playbookLabel: String {
    switch source {
    case .playbook(let path): path
    case .command: AdHocCommand.label
    }
  }

  /// The playbook file, when the run has one.
  public var playbookPath: String? {
    if case .playbook(let path) = source { path } else { nil }
  }

  /// The command, when the run is an ad-hoc `sixty exec`.
  public var adHocCommand: AdHocCommand? {
    if case .command(let command) = source { command } else { nil }
  }
}

/// One `-e KEY=VALUE` (or one variable of `-e @FILE` or `-e '{JSON}'`, its type kept).
public struct ExtraVariable: Sendable, Codable, Equatable {
  public var name: String
  public var value: Value
  public init(name: String, value: String) {
    self.name = name
    self.value = .string(value)
  }
  public init(name: String, value: Value) {
    self.name = name
    self.value = value
  }

  /// `KEY=VALUE`, KEY being letters, digits and '_' (not starting with a digit) and not `host`;
  /// checked on Unicode scalars.
  public init(parsing entry: String) throws(RunFailure) {
    guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
      throw RunFailure(
        "The extra variable '\(entry)' is not KEY=VALUE; expected something like -e version=1.2.",
        status: .badInput)
    }
    let key = String(entry[..<equals])
    func isLetter(_ scalar: Unicode.Scalar) -> Bool { scalar == "_" || scalar.properties.isAlphabetic }
    let scalars = key.unicodeScalars
    guard let first = scalars.first, isLetter(first),
      scalars.allSatisfy({ isLetter($0) || $0.properties.numericType != nil }), key != "host"
    else {
      throw RunFailure(
        "The extra variable name '\(key)' is not valid; expected letters, digits and '_' (and not 'host').",
        status: .badInput)
    }
    self.init(name: key, value: String(entry[entry.index(after: equals)...]))
  }
}

/// Where the report files go (`--report`, `--junit`, `--html`).
public struct ReportPaths: Sendable, Codable, Equatable {
  public var json: String?
  public var junit: String?
  public var html: String?
  public init(json: String? = nil, junit: String? = nil, html: String? = nil) {
    self.json = json
    self.junit = junit
    self.html = html
  }
  public var isEmpty: Bool { json == nil && junit == nil && html == nil }
}

/// How an `aws-ec2` inventory reaches EC2.
public struct EC2Settings: Sendable, Codable, Equatable {
  /// The EC2 API endpoint (default: AWS_ENDPOINT_URL_EC2, else AWS's).
  public var endpoint: String?
  /// Ignore the inventory cache.
  public var refresh = false
  /// Instances per DescribeInstances page.
  public var pageSize = 1000
  public init() {}
}

/// Where and as whom to call EC2 Instance Connect (AWS, the broker, or another compatible endpoint).
public struct ConnectSettings: Sendable, Codable, Equatable {
  public var endpoint: String?
  public var region: String?
  public var profile: String?
  public init(endpoint: String? = nil, region: String? = nil, profile: String? = nil) {
    self.endpoint = endpoint
    self.region = region
    self.profile = profile
  }
}

/// Where and how a run is recorded in the history.
public struct HistorySettings: Sendable, Codable, Equatable {
  /// The history file; nil for the default location.
  public var path: String?
  public var enabled = true
  /// The job that fired the run.
  public var job: String?
  public var trigger: RunTrigger = .manual
  public var scheduledFor: Date?
  /// The run this one repeats (`sixty runs rerun`).
  public var rerunOf: Int64?
  public init(path: String? = nil, enabled: Bool = true) {
    self.path = path
    self.enabled = enabled
  }
}

/// How `sixty run` ends, as its exit status.
public enum ExitStatus: Int32, Sendable, Error {
  /// Every host finished ok (or nothing to do, or a dry run).
  case ok = 0
  /// Some host failed.
  case hostsFailed = 1
  /// Bad input: playbook, inventory, policy, flags, credentials.
  case badInput = 2
  /// Refused by policy or a busy host lock.
  case refused = 3
  /// Stopped early: failure threshold, window, timeout or interrupt.
  case aborted = 4

  /// The history's status of a run that ended with this code.
  public var runStatus: RunStatus {
    switch self {
    case .ok: .succeeded
    case .hostsFailed: .failed
    case .badInput: .error
    case .refused: .refused
    case .aborted: .aborted
    }
  }
}

/// A run that could not go on, as a sentence and the exit status it ends with.
public struct RunFailure: Error, CustomStringConvertible, Sendable {
  public var message: String
  public var status: ExitStatus
  public init(_ message: String, status: ExitStatus) {
    self.message = message
    self.status = status
  }
  public var description: String { message }
}
