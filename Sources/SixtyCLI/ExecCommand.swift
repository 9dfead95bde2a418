import ArgumentParser
import Foundation
import SixtyCore
import SixtyRun

struct ExecCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "exec",
    abstract: "Run one command across the hosts a selector picks (the ad-hoc form of sixty run).",
    discussion: """
      One argument after -- is a shell command line, run by sh on each host as ssh and pssh run \
      it ('uptime; df -h /'); several arguments are a command and its arguments, run without a \
      shell and quoted one by one. {{ host.name }} and other templates are rendered per host. Same \
      scheduler, just-in-time pushes, policy, output, reports and exit status as sixty run.
      """)

  @Argument(help: "Which hosts: a group, a host, tag=value, a glob, or 'all'.")
  var selector: String

  @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
  var command: [String] = []

  @OptionGroup var files: InventoryOptions

  @OptionGroup var limits: LimitOptions

  @OptionGroup var variables: VariableOptions

  @Option(name: .long, help: "Rolling batches, e.g. 1,25%,100%.")
  var batches: String?

  @Option(name: .long, help: "Abort when more hosts than this fail (N or P%).")
  var maxFailures: String?

  @Option(name: .long, help: "The command's timeout on each host (e.g. 30s, 5m).")
  var timeout: String?

  @Flag(name: .long, help: "Run through sudo -n as root.")
  var become = false

  @OptionGroup var runner: RunnerOptions
  @OptionGroup var ec2: EC2Options

  func validate() throws {
    guard !command.isEmpty else {
      throw ValidationError("Give the command after --, e.g. sixty exec all -i inv.yml -- uptime.")
    }
    do {
      _ = try HostSelector(parsing: selector)
    } catch {
      throw ValidationError("the selector '\(selector)': \(error.message)")
    }
  }

  func run() async throws {
    try files.require("exec")
    var adHoc = AdHocCommand(selector: selector, command: command)
    adHoc.forks = runner.output.forks
    adHoc.batches = batches.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
    adHoc.maxFailures = maxFailures
    adHoc.timeout = timeout
    adHoc.become = become
    var request = RunRequest(source: .command(adHoc))
    files.apply(to: &request)
    request.limit = limits.hostLimit
    variables.apply(to: &request)
    request.ec2 = ec2.settings
    runner.apply(to: &request)
    try await RunnerOptions.run(request)
  }
}
