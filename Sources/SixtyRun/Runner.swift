import Foundation
import InstanceConnect
import SixtyCore
import SixtyExecution
import SixtyHistory
import SixtyPlanning
import SixtyPlaybook

/// The run library's entry point: a `RunRequest` in, the run's exit status out, everything said on
/// the way as `RunEvent`s.
public enum Runner {
  /// Loads and plans the request; shows the plan and stops on a dry run or a refusal; checks the
  /// maintenance windows; then runs, records and reports.
  /// - Throws: `RunFailure` for a run that cannot go on (bad credentials, a closed window, a busy
  ///   host); other errors of the key set-up as they are.
  public static func run(_ request: RunRequest, console: any RunConsole) async throws -> ExitStatus {
    try request.connect.checkProfile()
    let loaded = await load(request)
    return try await run(request, loaded: loaded, console: console)
  }

  /// The plan of a request, with every diagnostic.
  public static func load(_ request: RunRequest) async -> PlanLoader.Outcome {
    var outcome = PlanLoader.load(
      await InventoryResolver.load(inputs(request), ec2: request.ec2, profile: request.connect.profile))
    if case .command = request.source {
      // Positions in the generated playbook mean nothing to the user.
      for index in outcome.diagnostics.indices
      where outcome.diagnostics[index].location?.file == AdHocCommand.label {
        outcome.diagnostics[index].location = nil
      }
      // --forks became the generated play's concurrency: the forks notice says it was capped.
      outcome.diagnostics.removeAll {
        $0.location == nil && $0.severity == .warning && $0.message.hasPrefix("the play's concurrency ")
      }
    }
    return outcome
  }

  /// What the planner reads for a request: its files, or the environment's (`SIXTY_INVENTORY`,
  /// `SIXTY_POLICY`), its limit, variables and approval, and the default user ($USER).
  public static func inputs(_ request: RunRequest) -> PlanLoader.Inputs {
    let environment = ProcessInfo.processInfo.environment
    var vars: [String: Value] = [:]
    for variable in request.extraVars { vars[variable.name] = variable.value }
    var options = PlanOptions(
      extraVars: vars, limit: request.limit?.selector, approve: request.approve,
      defaultUser: SSHConfigResolver.localUser)
    options.remoteUser = request.sshClient.user
    options.shard = request.shard
    var inputs = PlanLoader.Inputs(
      playbookPath: request.playbookLabel,
      inventoryPath: request.inventory ?? environment["SIXTY_INVENTORY"],
      policyPath: request.policy ?? environment["SIXTY_POLICY"], options: options)
    if case .command(let command) = request.source { inputs.playbookText = command.playbookText }
    return inputs
  }

  static func run(
    _ request: RunRequest, loaded: PlanLoader.Outcome, console: any RunConsole,
    planned: (Plan) -> Void = { _ in }
  ) async throws -> ExitStatus {
    console.handle(.diagnostics(loaded.diagnostics.filter { $0.kind != .policy || loaded.plan == nil }))
    guard let plan = loaded.plan else { return ExitStatus(rawValue: loaded.exitCode) ?? .badInput }
    planned(plan)
    if let notice = forksNotice(plan, forks: request.forks) { console.handle(.warning(notice)) }
    if plan.isRefused || request.dryRun {
      console.handle(.plan(PlanTextRenderer.render(plan)))
      if !plan.isRefused, let line = try endpointsLine(request.connect.endpoints()) {
        console.handle(.plan(line))
      }
      return plan.isRefused ? .refused : .ok
    }
    try MaintenanceWindows.check(plan, now: Date())
    let digest: String =
      switch request.source {
      case .playbook(let path): FileDigest.sha256(ofFile: path)
      case .command(let command): FileDigest.sha256(Array(command.playbookText.utf8))
      }
    return try await RunSession(plan: plan, request: request, console: console).execute(
      playbookDigest: digest)
  }
}

extension Runner {
  /// For a dry run: where the keys would be pushed, when an endpoint is set (nil: AWS's).
  static func endpointsLine(_ endpoints: [URL]) -> String? {
    let names = endpoints.map(EndpointList.description)
    switch names.count {
    case 0: return nil
    case 1: return "key pushes go to \(names[0])\n"
    default:
      return
        "key pushes go to \(names[0]), then \(names.dropFirst().joined(separator: ", then ")) (the next on a connection error, a timeout or an HTTP 5xx answer; later pushes start with the one that last answered)\n"
    }
  }
}

/// Which hosts a run is limited to: a selector as the user wrote it, or exactly these hosts (a
/// rerun of the failed ones).
public enum HostLimit: Sendable, Codable, Equatable {
  case selector(String)
  case hosts([String])
  /// Several `--limit`s: their union.
  case union([String])

  /// The limit of `--limit` given `limits.count` times: none, one selector, or their union.
  public init?(limits: [String]) {
    switch limits.count {
    case 0: return nil
    case 1: self = .selector(limits[0])
    default: self = .union(limits)
    }
  }

  /// The limit recorded as `text` (one selector, or several joined by " | ").
  public init?(recorded text: String) {
    let limits = text.components(separatedBy: " | ")
    guard (try? HostSelector(union: limits)) != nil else { return nil }
    self.init(limits: limits)
  }

  /// As recorded in the history.
  public var text: String {
    switch self {
    case .selector(let text): text
    case .hosts(let names), .union(let names): names.joined(separator: " | ")
    }
  }

  /// Nil for a selector that does not parse (the command line checks it first).
  public var selector: HostSelector? {
    switch self {
    case .selector(let text): try? HostSelector(parsing: text)
    case .hosts(let names), .union(let names): try? HostSelector(union: names)
    }
  }
}
