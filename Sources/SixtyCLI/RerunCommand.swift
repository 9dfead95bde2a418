import ArgumentParser
import Foundation
import SixtyCore
import SixtyHistory
import SixtyPlanning
import SixtyPlaybook

extension RunsCommand {
  struct Rerun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run a recorded run's playbook again, with the same inventory and policy.",
      discussion: """
        With --failed only the hosts that did not finish ok (failed, timed out, unreachable or never \
        started) are targeted. Extra variables are never stored: pass the same -e values again.
        """)

    @Argument(help: "The run's id (from `sixty runs list`).")
    var id: Int64

    @Flag(name: .long, help: "Only the hosts that did not finish ok.")
    var failed = false

    @Option(
      name: [.customShort("e"), .customLong("extra-var")],
      help: "Set a variable (KEY=VALUE); repeatable; give the same ones as the original run.")
    var extraVars: [String] = []

    @Flag(name: .long, help: "Approve hosts that policy marks as requiring approval.")
    var approve = false

    @Flag(name: .long, help: "Print the plan and touch nothing.")
    var dryRun = false

    @Option(name: .long, help: "Hosts at once (caps the policy's concurrency).")
    var forks: Int?

    @Option(name: .long, help: "Write complete results as JSON to this file.")
    var report: String?

    @Flag(name: .long, help: "No live progress line, even on a terminal.")
    var noProgress = false

    @Option(name: .long, help: "The ssh program (default: ssh from PATH).")
    var ssh: String = "ssh"

    @OptionGroup var history: HistoryOptions
    @OptionGroup var connect: ConnectOptions
    @OptionGroup var ec2: EC2Options

    func run() async throws {
      let store = try history.open()
      let original: RunRecord
      let hosts: [HostRecord]
      do {
        guard let found = try store.run(id: id) else {
          throw CLIError("there is no run \(id) in \(store.path); `sixty runs list` shows the runs.", code: 2)
        }
        original = found
        hosts = try store.hosts(runID: id)
      } catch let error as HistoryError {
        throw CLIError(error.description, code: 2)
      }
      guard original.playbook != "sixty exec", FileManager.default.fileExists(atPath: original.playbook)
      else {
        throw CLIError(
          original.playbook == "sixty exec"
            ? "run \(id) was an ad-hoc `sixty exec`; run the command again with sixty exec."
            : "run \(id)'s playbook \(original.playbook) no longer exists.", code: 2)
      }
      guard let inventory = original.inventory else {
        throw CLIError("run \(id) has no recorded inventory, so its hosts cannot be found again.", code: 2)
      }
      if original.status == .running {
        throw CLIError(
          "run \(id) is still running (process \(original.pid)); wait for it to finish.", code: 2)
      }
      var selector: HostSelector?
      var targets: [String] = []
      if failed {
        for host in hosts where host.didNotSucceed && !targets.contains(host.host) {
          targets.append(host.host)
        }
        guard !targets.isEmpty else {
          writeStandardOutput(Array("run \(id) has no failed hosts; nothing to run again.\n".utf8))
          return
        }
        do {
          selector = try HostSelector(union: targets)
        } catch {
          throw CLIError("cannot select the failed hosts of run \(id): \(error.message)", code: 2)
        }
      } else if let limit = original.limit {
        selector = try? HostSelector(parsing: limit)
      }
      var vars: [String: Value] = [:]
      for entry in extraVars {
        guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
          throw ValidationError(
            "The extra variable '\(entry)' is not KEY=VALUE; expected something like -e version=1.2.")
        }
        vars[String(entry[..<equals])] = .string(String(entry[entry.index(after: equals)...]))
      }
      let missing = original.extraVarNames.filter { vars[$0] == nil }
      if !missing.isEmpty {
        throw CLIError(
          "run \(id) was started with -e \(missing.joined(separator: ", -e ")); values are never stored, so pass them again (e.g. -e \(missing[0])=VALUE).",
          code: 2)
      }
      let digest = RunRecorder.sha256(ofFile: original.playbook)
      if digest != original.playbookSHA256 {
        FileHandle.standardError.write(
          Data(
            "sixty: warning: the playbook \(original.playbook) changed since run \(id) (sha256 \(original.playbookSHA256.prefix(12))… then, \(digest.prefix(12))… now); running it as it is now.\n"
              .utf8))
      }
      let user = ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "root"
      let inputs = PlanLoader.Inputs(
        playbookPath: original.playbook, inventoryPath: inventory, policyPath: original.policy,
        options: PlanOptions(extraVars: vars, limit: selector, approve: approve, defaultUser: user))
      let outcome = PlanLoader.load(await InventoryResolver.load(inputs, ec2: ec2))
      printDiagnostics(outcome.diagnostics.filter { $0.kind != .policy || outcome.plan == nil })
      guard let plan = outcome.plan else { throw ExitCode(outcome.exitCode) }
      if failed {
        let planned = Set(plan.plays.flatMap { $0.hosts.filter { $0.batch != nil }.map(\.host.name) })
        let gone = targets.filter { !planned.contains($0) }
        if !gone.isEmpty {
          FileHandle.standardError.write(
            Data(
              "sixty: warning: \(gone.count) failed host\(gone.count == 1 ? "" : "s") of run \(id) \(gone.count == 1 ? "is" : "are") no longer targeted: \(gone.joined(separator: ", ")).\n"
                .utf8))
        }
        writeStandardOutput(
          Array(
            "rerunning run \(id) on its \(targets.count) failed host\(targets.count == 1 ? "" : "s"): \(targets.joined(separator: ", "))\n"
              .utf8))
      }
      if plan.isRefused || dryRun {
        writeStandardOutput(Array(PlanTextRenderer.render(plan).utf8))
        throw ExitCode(plan.isRefused ? 3 : 0)
      }
      try RunCommand.checkWindows(plan)
      var settings = RunSettings(
        forks: forks, report: report, junit: nil, groupOutput: false, ssh: ssh, connect: connect,
        progress: !noProgress)
      settings.history = history.settings
      settings.history.trigger = .rerun
      settings.history.rerunOf = id
      settings.history.job = original.job
      settings.history.limit = selector?.text
      settings.history.extraVarNames = Array(vars.keys).sorted()
      throw ExitCode(try await RunSession(plan: plan, settings: settings).execute())
    }
  }
}
