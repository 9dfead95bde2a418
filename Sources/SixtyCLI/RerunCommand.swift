import ArgumentParser
import Foundation
import SixtyRun

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

    @OptionGroup var output: RunOutputOptions
    @OptionGroup var history: HistoryOptions
    @OptionGroup var connect: ConnectOptions
    @OptionGroup var ec2: EC2Options

    func run() async throws {
      var variables: [ExtraVariable] = []
      for entry in extraVars {
        guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
          throw ValidationError(
            "The extra variable '\(entry)' is not KEY=VALUE; expected something like -e version=1.2.")
        }
        variables.append(
          ExtraVariable(name: String(entry[..<equals]), value: String(entry[entry.index(after: equals)...])))
      }
      var settings = RunRequest(source: .playbook(path: ""))
      output.apply(to: &settings)
      settings.approve = approve
      settings.connect = connect.settings
      settings.ec2 = ec2.settings
      settings.history = history.settings
      var request = RerunRequest(id: id, settings: settings)
      request.failedOnly = failed
      request.extraVars = variables
      let console = TerminalConsole(groupOutput: settings.groupOutput, progress: settings.progress)
      throw ExitCode(try await Runner.rerun(request, console: console).rawValue)
    }
  }

}
