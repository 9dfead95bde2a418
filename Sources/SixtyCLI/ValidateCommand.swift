import ArgumentParser
import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import SixtyRun

struct ValidateCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract: "Check a playbook, its inventory and policy, and print every problem found.",
    discussion: "Exit status: 0 when clean, 2 for bad input, 3 when policy refuses the playbook.")

  @OptionGroup var options: PlaybookOptions

  func run() async throws {
    let outcome = PlanLoader.load(await InventoryResolver.load(options.inputs, ec2: options.ec2.settings))
    var bag = DiagnosticBag()
    bag.append(contentsOf: outcome.diagnostics)
    if let playbook = outcome.playbook { bag.append(contentsOf: PlaybookLint.unquotedShellValues(playbook)) }
    printDiagnostics(bag.sorted)
    if outcome.exitCode == 0 {
      let plays = outcome.playbook?.plays.count ?? 0
      let tasks = outcome.playbook?.plays.reduce(0) { $0 + $1.tasks.count } ?? 0
      var line =
        "\(options.playbook): ok (\(plays) play\(plays == 1 ? "" : "s"), \(tasks) task\(tasks == 1 ? "" : "s")"
      if let plan = outcome.plan {
        let hosts = Set(plan.plays.flatMap { $0.hosts.map(\.host.name) }).count
        line += ", \(hosts) host\(hosts == 1 ? "" : "s")"
      }
      print(line + ")")
    }
    throw ExitCode(outcome.exitCode)
  }
}
