import Foundation
import SixtyCore
import SixtyHistory
import SixtyPlanning
import SixtyPlaybook

/// `sixty runs rerun`: a recorded run's playbook (or `sixty exec` command) again, with the same
/// inventory and policy, on all its hosts or only those that did not finish ok.
public struct RerunRequest: Sendable {
  /// The recorded run.
  public var id: Int64
  /// Only the hosts that did not finish ok.
  public var failedOnly = false
  /// How to run it: forks, reports, ssh, connect, EC2 and history settings, and the same `-e`
  /// values as the original run (values are never stored); its source and inventory are the
  /// recorded run's.
  public var settings: RunRequest

  public init(id: Int64, settings: RunRequest) {
    self.id = id
    self.settings = settings
  }
}

extension Runner {
  /// Runs a recorded run again.
  /// - Throws: `RunFailure` `.badInput` when the run cannot be repeated (unknown, still running,
  ///   its playbook gone, an exec recorded without its command, a missing `-e`).
  public static func rerun(_ rerun: RerunRequest, console: any RunConsole) async throws -> ExitStatus {
    let id = rerun.id
    let store: History
    let original: RunRecord
    let hosts: [HostRecord]
    do {
      store = try History(path: rerun.settings.history.path ?? History.defaultPath())
      try store.sweepInterrupted()
      guard let found = try store.run(id: id) else {
        throw RunFailure(
          "there is no run \(id) in \(store.path); `sixty runs list` shows the runs.", status: .badInput)
      }
      original = found
      hosts = try store.hosts(runID: id)
    } catch let error as HistoryError {
      throw RunFailure(error.description, status: .badInput)
    }
    let source: RunRequest.Source
    if let recorded = original.adHocCommand {
      guard let command = try? AdHocCommand(recorded: recorded) else {
        throw RunFailure(
          "run \(id)'s recorded command cannot be read back by this version of sixty; run it again with sixty exec.",
          status: .badInput)
      }
      source = .command(command)
    } else if original.playbook == AdHocCommand.label {
      throw RunFailure(
        "run \(id) was an ad-hoc `sixty exec` recorded without its command; run the command again with sixty exec.",
        status: .badInput)
    } else if !original.playbook.hasPrefix("/") {
      throw RunFailure(
        "run \(id)'s playbook was recorded as the relative path \(original.playbook), so it cannot be found again; run it with sixty run.",
        status: .badInput)
    } else if !FileManager.default.fileExists(atPath: original.playbook) {
      throw RunFailure("run \(id)'s playbook \(original.playbook) no longer exists.", status: .badInput)
    } else {
      source = .playbook(path: original.playbook)
    }
    guard let inventory = original.inventory else {
      throw RunFailure(
        "run \(id) has no recorded inventory, so its hosts cannot be found again.", status: .badInput)
    }
    if original.status == .running {
      throw RunFailure(
        "run \(id) is still running (process \(original.pid)); wait for it to finish.", status: .badInput)
    }
    var request = rerun.settings
    request.source = source
    request.inventory = inventory
    request.policy = original.policy
    // As a map, last value wins, recorded by name in order.
    var values: [String: Value] = [:]
    for variable in rerun.settings.extraVars { values[variable.name] = variable.value }
    request.extraVars = values.keys.sorted().map { ExtraVariable(name: $0, value: values[$0]!) }
    request.history.trigger = .rerun
    request.history.rerunOf = id
    request.history.job = original.job
    var targets: [String] = []
    if rerun.failedOnly {
      for host in hosts where host.didNotSucceed && !targets.contains(host.host) { targets.append(host.host) }
      guard !targets.isEmpty else {
        console.handle(.plan("run \(id) has no failed hosts; nothing to run again.\n"))
        return .ok
      }
      do {
        _ = try HostSelector(union: targets)
      } catch {
        throw RunFailure("cannot select the failed hosts of run \(id): \(error.message)", status: .badInput)
      }
      request.limit = .hosts(targets)
    } else if let limit = original.limit.flatMap(HostLimit.init(recorded:)) {
      request.limit = limit
    }
    let given = Set(rerun.settings.extraVars.map(\.name))
    let missing = original.extraVarNames.filter { !given.contains($0) }
    if !missing.isEmpty {
      throw RunFailure(
        "run \(id) was started with -e \(missing.joined(separator: ", -e ")); values are never stored, so pass them again (e.g. -e \(missing[0])=VALUE).",
        status: .badInput)
    }
    if case .playbook(let path) = source {
      let digest = FileDigest.sha256(ofFile: path)
      if digest != original.playbookSHA256 {
        console.handle(
          .warning(
            "sixty: warning: the playbook \(path) changed since run \(id) (sha256 \(original.playbookSHA256.prefix(12))… then, \(digest.prefix(12))… now); running it as it is now."
          ))
      }
    }
    try request.connect.checkProfile()
    return try await run(request, loaded: await load(request), console: console) { plan in
      guard rerun.failedOnly else { return }
      let planned = Set(plan.plays.flatMap { $0.hosts.filter { $0.batch != nil }.map(\.host.name) })
      let gone = targets.filter { !planned.contains($0) }
      if !gone.isEmpty {
        console.handle(
          .warning(
            "sixty: warning: \(gone.count) failed host\(gone.count == 1 ? "" : "s") of run \(id) \(gone.count == 1 ? "is" : "are") no longer targeted: \(gone.joined(separator: ", "))."
          ))
      }
      console.handle(
        .plan(
          "rerunning run \(id) on its \(targets.count) failed host\(targets.count == 1 ? "" : "s"): \(targets.joined(separator: ", "))\n"
        ))
    }
  }
}
