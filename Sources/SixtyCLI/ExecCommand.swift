import ArgumentParser
import Foundation
import SixtyCore
import SixtyPlanning

struct ExecCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "exec",
    abstract: "Run one command across the hosts a selector picks (the ad-hoc form of sixty run).",
    discussion: """
      The command runs without a shell on each host, its arguments quoted as given ({{ host.name }} \
      and other templates are rendered per host). Same scheduler, just-in-time pushes, policy, \
      output, reports and exit status as sixty run.
      """)

  @Argument(help: "Which hosts: a group, a host, tag=value, a glob, or 'all'.")
  var selector: String

  @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
  var command: [String] = []

  @Option(name: [.customShort("i"), .long], help: "The inventory file (YAML).")
  var inventory: String?

  @Option(name: .long, help: "The organisation policy file.")
  var policy: String?

  @Option(name: .long, help: "Hosts at once.")
  var forks: Int?

  @Option(name: .long, help: "Rolling batches, e.g. 1,25%,100%.")
  var batches: String?

  @Option(name: .long, help: "Abort when more hosts than this fail (N or P%).")
  var maxFailures: String?

  @Option(name: .long, help: "The command's timeout on each host (e.g. 30s, 5m).")
  var timeout: String?

  @Flag(name: .long, help: "Run through sudo -n as root.")
  var become = false

  @Option(name: .long, help: "Write complete results as JSON to this file.")
  var report: String?

  @Option(name: .long, help: "Write JUnit XML to this file.")
  var junit: String?

  @Option(name: .long, help: "Write a self-contained HTML report with a per-host timeline to this file.")
  var html: String?

  @Flag(name: .long, help: "Group identical outputs at the end.")
  var groupOutput = false

  @Flag(name: .long, help: "No live progress line, even on a terminal.")
  var noProgress = false

  @Flag(name: .long, help: "Print the plan and touch nothing.")
  var dryRun = false

  @Option(name: .long, help: "The ssh program (default: ssh from PATH).")
  var ssh: String = "ssh"

  @OptionGroup var history: HistoryOptions

  @OptionGroup var ec2: EC2Options

  @OptionGroup var connect: ConnectOptions

  func validate() throws {
    guard !command.isEmpty else {
      throw ValidationError("Give the command after --, e.g. sixty exec all -i inv.yml -- uptime.")
    }
    if let forks, forks < 1 { throw ValidationError("--forks must be at least 1, not \(forks).") }
    do {
      _ = try HostSelector(parsing: selector)
    } catch {
      throw ValidationError("the selector '\(selector)': \(error.message)")
    }
  }

  /// A one-task playbook, written as JSON (which is YAML), so exec goes through the same checks as run.
  func playbookText() -> String {
    var w = JSONWriter()
    w.beginObject()
    w.field("name", "exec: " + command.joined(separator: " ").prefix(60))
    w.field("hosts", selector)
    w.key("policy")
    w.beginObject()
    if let forks { w.field("concurrency", forks) }
    if let batches {
      w.key("batches")
      w.beginArray()
      for part in batches.split(separator: ",") { w.value(part.trimmingCharacters(in: .whitespaces)) }
      w.endArray()
    }
    if let maxFailures { w.field("max_failures", maxFailures) }
    if let timeout {
      w.key("timeouts")
      w.beginObject()
      w.field("task", timeout)
      w.endObject()
    }
    w.endObject()
    w.key("tasks")
    w.beginArray()
    w.beginObject()
    w.field("name", "command")
    w.key("command")
    w.beginArray()
    for argument in command { w.value(argument) }
    w.endArray()
    if become { w.field("become", true) }
    w.endObject()
    w.endArray()
    w.endObject()
    return String(decoding: w.bytes, as: UTF8.self)
  }

  func run() async throws {
    guard let inventoryPath = inventory ?? ProcessInfo.processInfo.environment["SIXTY_INVENTORY"] else {
      throw ValidationError("sixty exec needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY).")
    }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sixty-exec-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("exec.yml").path
    try playbookText().write(toFile: path, atomically: true, encoding: .utf8)
    let user = ProcessInfo.processInfo.environment["USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "root"
    let inputs = PlanLoader.Inputs(
      playbookPath: path, inventoryPath: inventoryPath,
      policyPath: policy ?? ProcessInfo.processInfo.environment["SIXTY_POLICY"],
      options: PlanOptions(extraVars: [:], limit: nil, approve: false, defaultUser: user))
    let outcome = PlanLoader.load(await InventoryResolver.load(inputs, ec2: ec2))
    // Positions in the generated file mean nothing to the user: name the flag instead.
    let diagnostics = outcome.diagnostics.map { diagnostic in
      var copy = diagnostic
      if copy.location?.file == path { copy.location = nil }
      return copy
    }
    printDiagnostics(diagnostics.filter { $0.kind != .policy || outcome.plan == nil })
    guard let plan = outcome.plan else { throw ExitCode(outcome.exitCode) }
    if plan.isRefused || dryRun {
      writeStandardOutput(Array(PlanTextRenderer.render(plan).utf8))
      throw ExitCode(plan.isRefused ? 3 : 0)
    }
    try RunCommand.checkWindows(plan)
    var settings = RunSettings(
      forks: forks, report: report, junit: junit, groupOutput: groupOutput, ssh: ssh, connect: connect,
      progress: !noProgress)
    settings.html = html
    settings.history = history.settings
    settings.history.playbookLabel = "sixty exec"
    throw ExitCode(try await RunSession(plan: plan, settings: settings).execute())
  }
}
