import SixtyCore
import SixtyPlaybook
import SixtyPolicy

/// A task as it will run on one host, with every template rendered.
public struct RenderedTask: Hashable, Sendable {
  public enum Action: Hashable, Sendable {
    case command([String])
    case shell(String)
    case script(path: String, resolvedPath: String)
    case upload(source: String, resolvedSource: String, destination: String, mode: String?)
  }

  public var action: Action
  public var env: [String]  // "KEY=value", in file order
  public var cwd: String?

  /// The command as a person would type it; what command rules are checked against.
  public var display: String {
    switch action {
    case .command(let argv): argv.map(ShellQuote.quote).joined(separator: " ")
    case .shell(let text): text
    case .script(let path, _): "script \(path)"
    case .upload(let source, _, let destination, let mode):
      "upload \(source) -> \(destination)\(mode.map { " (mode \($0))" } ?? "")"
    }
  }
}

/// What happens to one task on one host.
public enum StepStatus: Hashable, Sendable {
  case run
  case skipped(String)
  case refused(String)
}

public struct PlannedStep: Hashable, Sendable {
  /// Index into the play's `tasks`.
  public var task: Int
  public var status: StepStatus
  /// Nil when the task is skipped or could not be rendered.
  public var rendered: RenderedTask?
}

/// One host's part of a play.
public struct HostPlan: Sendable {
  public var host: InventoryHost
  /// The OS user the key is pushed for and ssh logs in as.
  public var user: String
  /// The rolling batch the host runs in (0-based), or nil when the host is refused.
  public var batch: Int?
  /// Steps in execution order (topological order of the play's graph).
  public var steps: [PlannedStep]
  /// Why policy refuses the whole host, if it does.
  public var refusal: String?

  /// Names of the tasks that will run, in order.
  public func order(in play: PlayPlan) -> [String] {
    steps.compactMap { $0.status == .run ? play.tasks[$0.task].name : nil }
  }
}

/// One play, resolved against the inventory and policy.
public struct PlayPlan: Sendable {
  public var name: String
  public var selector: String
  public var policy: EffectivePolicy
  public var tasks: [PlaybookTask]
  public var graph: TaskGraph
  /// Every targeted host in inventory order, refused ones included.
  public var hosts: [HostPlan]
  /// Rolling batches as indices into `hosts`.
  public var batches: [[Int]]
  /// The failure threshold in hosts (the run aborts when more fail), if any.
  public var failureThreshold: Int?
}

/// A policy refusal found while planning.
public struct Refusal: Hashable, Sendable {
  public var play: String
  public var host: String
  public var task: String?
  public var reason: String
}

/// Everything a run would do, computed without touching the network.
public struct Plan: Sendable {
  public var playbookPath: String
  public var inventoryPath: String?
  /// The organisation policy file, when one was given.
  public var policyPath: String?
  public var plays: [PlayPlan]
  public var refusals: [Refusal]
  public var diagnostics: [Diagnostic]
  /// The part of the targets this plan covers (`--shard`), if any.
  public var shard: Shard?
  /// The hosts the whole run targets, every shard's (after `--limit`).
  public var runTargets = 0

  public var isRefused: Bool { !refusals.isEmpty }
}
