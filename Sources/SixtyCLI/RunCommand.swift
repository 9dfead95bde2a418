import ArgumentParser
import Foundation
import SixtyCore
import SixtyHistory
import SixtyPlanning
import SixtyRun

struct RunCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Run a playbook across the fleet, pushing each host's key just before its turn.",
    discussion: """
      Exit status: 0 all hosts ok, 1 some host failed, 2 bad input, 3 refused by policy, 4 aborted \
      (failure threshold, window, timeout or interrupt). The first Ctrl-C stops starting new work \
      and lets running tasks finish; a second kills them.
      """)

  @OptionGroup var options: PlaybookOptions
  @OptionGroup var runner: RunnerOptions

  @Option(
    name: .long,
    help: "Start no host after this time (ISO 8601); hosts not started by then are reported as not started.")
  var notAfter: String?

  @Option(
    name: .long,
    help: ArgumentHelp(
      "Run only the I-th of N parts of the targets (after --limit), as one shard of a run shared through a PostgreSQL history.",
      valueName: "I/N"))
  var shard: String?

  @Option(
    name: .customLong("run-id"),
    help: ArgumentHelp(
      "The key the shards of one run share. Without it the key is derived from the run's inputs (playbook, inventory, policy, limit, variables, shard count), so shards started apart from the same inputs join one run; pass --run-id to be sure.",
      valueName: "KEY"))
  var runKey: String?

  func validate() throws {
    if let notAfter, parseTime(notAfter) == nil {
      throw ValidationError(
        "--not-after '\(notAfter)' is not an ISO 8601 time; expected something like 2026-12-24T03:30:00Z.")
    }
    if let shard {
      _ = try RunCommand.parseShard(shard)
      // A dry run records nothing: it shows the shard's part with any history.
      if !runner.output.dryRun { try requireSharedHistory() }
    }
    if let runKey {
      guard shard != nil else {
        throw ValidationError("--run-id names the run that shards share; expected it with --shard I/N.")
      }
      if let problem = RunRequest.runKeyProblem(runKey) { throw ValidationError(problem) }
    }
  }

  func run() async throws {
    try await RunnerOptions.run(try makeRequest())
  }

  /// `--shard` counts failures through the history, which every shard must share.
  func requireSharedHistory() throws {
    if runner.history.noHistory {
      throw ValidationError(
        "--shard needs the run history (the shards count failures through it); expected no --no-history.")
    }
    let path = runner.history.path
    if !History.isShared(path: path) {
      throw ValidationError(
        "--shard needs a shared history, and \(SafeText.quoted(path, limit: 200)) is a SQLite file; expected --history postgresql://… (or SIXTY_HISTORY) that every shard uses."
      )
    }
  }

  /// `--shard I/N`, or the sentence saying what is wrong with it.
  static func parseShard(_ text: String) throws -> Shard {
    do throws(DiagnosticsError) {
      return try Shard(parsing: text)
    } catch {
      throw ValidationError(error.diagnostics.map(\.message).joined(separator: " "))
    }
  }

  func makeRequest() throws -> RunRequest {
    try options.files.require("run")
    var request = RunRequest(source: .playbook(path: options.playbook))
    options.apply(to: &request)
    runner.apply(to: &request)
    request.notAfter = notAfter.flatMap { parseTime($0) }
    request.shard = try shard.map(RunCommand.parseShard)
    request.runKey = runKey
    return request
  }
}

/// How a run is carried out, shown and recorded: options of `run`, `exec` and `runs rerun`.
struct RunnerOptions: ParsableArguments {
  @OptionGroup var output: RunOutputOptions
  @OptionGroup var history: HistoryOptions
  @OptionGroup var connect: ConnectOptions
  @OptionGroup var sshClient: SSHClientOptions

  func apply(to request: inout RunRequest) {
    output.apply(to: &request)
    sshClient.apply(to: &request)
    request.history = history.settings
    request.connect = connect.settings
    if request.ec2.endpoint == nil { request.ec2.endpoint = connect.ec2EndpointURL }
  }

  /// Runs the request on the terminal and exits with its status.
  static func run(_ request: RunRequest) async throws -> Never {
    let console = TerminalConsole(groupOutput: request.groupOutput, progress: request.progress)
    throw ExitCode(try await Runner.run(request, console: console).rawValue)
  }
}

/// How a run shows and writes its results.
struct RunOutputOptions: ParsableArguments {
  @Option(name: [.customShort("f"), .long], help: "Hosts at once (caps the policy's concurrency).")
  var forks: Int?

  @Flag(name: [.long, .customLong("check")], help: "Print the plan and touch nothing.")
  var dryRun = false

  @Option(name: .long, help: "Write complete results as JSON to this file.")
  var report: String?

  @Option(name: .long, help: "Write JUnit XML (one test case per host and task) to this file.")
  var junit: String?

  @Option(
    name: .long,
    help: "Write a self-contained HTML report (summary, per-host timeline, failures, output) to this file.")
  var html: String?

  @Flag(name: .long, help: "No live progress line, even on a terminal.")
  var noProgress = false

  @Flag(name: .long, help: "Print each task's output grouped at the end, identical outputs merged.")
  var groupOutput = false

  @Option(name: .long, help: "The ssh program (default: ssh from PATH).")
  var ssh: String = "ssh"

  func validate() throws {
    if let forks, forks < 1 { throw ValidationError("--forks must be at least 1, not \(forks).") }
  }

  func apply(to request: inout RunRequest) {
    request.forks = forks
    request.dryRun = dryRun
    request.reports = ReportPaths(json: report, junit: junit, html: html)
    request.progress = !noProgress
    request.groupOutput = groupOutput
    request.ssh = ssh
  }
}

/// `sixty run-request`: a run the jobs daemon started, its `RunRequest` as JSON on standard input.
struct RunRequestCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run-request", abstract: "Run a request given as JSON on standard input.",
    shouldDisplay: false)

  func run() async throws {
    guard DaemonParent.watch() else {
      throw CLIError("the jobs daemon that started this run is gone; the run did not start.", code: 4)
    }
    let data = FileHandle.standardInput.readDataToEndOfFile()
    let request: RunRequest
    do {
      request = try JSONDecoder().decode(RunRequest.self, from: data)
    } catch {
      throw CLIError("the run request on standard input is not valid: \(error)", code: 2)
    }
    try await RunnerOptions.run(request)
  }
}
