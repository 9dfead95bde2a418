import SixtyCore

/// What a task does on a host.
public enum TaskAction: Hashable, Sendable {
  /// An argv list run without a shell; each element is a template rendered on its own.
  case command([Template])
  /// A string run by `sh -c`.
  case shell(Template)
  /// A local script file (resolved relative to the playbook) streamed to `sh -s` over stdin.
  case script(path: String, resolvedPath: String)
  /// A local file copied to `dest` on the host, with an optional octal mode.
  case upload(source: String, resolvedSource: String, destination: Template, mode: String?)

  public var kind: String {
    switch self {
    case .command: "command"
    case .shell: "shell"
    case .script: "script"
    case .upload: "upload"
    }
  }
}

/// What happens to the rest of the run when a task fails on a host.
public enum FailurePolicy: String, Hashable, Sendable, CaseIterable {
  /// Skip the host's remaining tasks (the default).
  case abortHost = "abort-host"
  /// Count the failure but go on with the host's other tasks.
  case `continue`
  /// Stop starting new work anywhere.
  case abortRun = "abort-run"
}

/// One step of a play, run on each targeted host.
public struct PlaybookTask: Hashable, Sendable {
  public var name: String
  public var action: TaskAction
  public var needs: [Dependency]
  public var become: Bool
  public var becomeUser: String?
  public var env: [(key: String, value: Template)]
  public var cwd: Template?
  public var timeout: TimeSpan?
  public var retries: Int?
  public var retryDelay: TimeSpan?
  public var okCodes: [Int]
  public var onFailure: FailurePolicy
  public var when: Condition?
  public var whenText: String?
  public var runOnce: Bool
  public var location: SourceLocation

  public struct Dependency: Hashable, Sendable {
    public var name: String
    public var location: SourceLocation
  }

  public init(name: String, action: TaskAction, location: SourceLocation) {
    self.name = name
    self.action = action
    self.needs = []
    self.become = false
    self.env = []
    self.okCodes = [0]
    self.onFailure = .abortHost
    self.runOnce = false
    self.location = location
  }

  public static func == (a: PlaybookTask, b: PlaybookTask) -> Bool {
    a.name == b.name && a.location == b.location
  }

  public func hash(into hasher: inout Hasher) {
    hasher.combine(name)
    hasher.combine(location)
  }

  /// Every template the task renders, for checking variables.
  public var templates: [Template] {
    var result: [Template] = []
    switch action {
    case .command(let argv): result += argv
    case .shell(let template): result.append(template)
    case .upload(_, _, let destination, _): result.append(destination)
    case .script: break
    }
    result += env.map(\.value)
    if let cwd { result.append(cwd) }
    return result
  }
}
