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

    /// The same `-e` values as the original run: values are never stored.
    @OptionGroup var variables: VariableOptions
    @OptionGroup var runner: RunnerOptions
    @OptionGroup var ec2: EC2Options

    func run() async throws {
      var settings = RunRequest(source: .playbook(path: ""))
      settings.ec2 = ec2.settings
      runner.apply(to: &settings)
      variables.apply(to: &settings)
      var request = RerunRequest(id: id, settings: settings)
      request.failedOnly = failed
      let console = TerminalConsole(groupOutput: settings.groupOutput, progress: settings.progress)
      throw ExitCode(try await Runner.rerun(request, console: console).rawValue)
    }
  }

}
