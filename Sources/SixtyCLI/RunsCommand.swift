import ArgumentParser
import Foundation
import SixtyCore
import SixtyHistory
import SixtyPlanning
import SixtyPlaybook
import SixtyReport
import SixtyRun

/// Where the run history lives, shared by every command that reads or writes it.
struct HistoryOptions: ParsableArguments {
  @Option(
    name: .customLong("history"),
    help: "The run history database (default: $SIXTY_HISTORY, else $XDG_STATE_HOME/sixty/history.sqlite).")
  var historyPath: String?

  @Flag(name: .long, help: "Do not record this run in the history (host locks are then not checked).")
  var noHistory = false

  var settings: HistorySettings {
    HistorySettings(path: historyPath, enabled: !noHistory)
  }

  var path: String { historyPath ?? History.defaultPath() }

  func open() throws -> History {
    do {
      let history = try History(path: path)
      try history.sweepInterrupted()
      return history
    } catch {
      throw CLIError(error.description, code: 2)
    }
  }
}

/// An ISO 8601 time (with or without fractional seconds), or a length of time ago (`2h`, `7d`).
func parseTime(_ text: String, relativeTo now: Date = Date()) -> Date? {
  let plain = ISO8601DateFormatter()
  if let date = plain.date(from: text) { return date }
  let fractional = ISO8601DateFormatter()
  fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
  if let date = fractional.date(from: text) { return date }
  if text.hasSuffix("d"), let days = Int(text.dropLast()), days >= 0 {
    return now.addingTimeInterval(-Double(days) * 86400)
  }
  if let span = TimeSpan(parsing: text), !text.allSatisfy(\.isNumber) {
    return now.addingTimeInterval(-Double(span.milliseconds) / 1000)
  }
  return nil
}

enum ListFormat: String, ExpressibleByArgument, CaseIterable {
  case text, json
}

struct RunsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "runs",
    abstract: "Look back at runs: list them, show one, write its reports, run its failed hosts again.",
    subcommands: [List.self, Show.self, Report.self, Rerun.self])

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List runs, newest first.")

    @Option(name: .long, help: "Only runs of this scheduled job.")
    var job: String?

    @Option(name: .long, help: "Only runs started since this time (ISO 8601, or an age like 2h or 7d).")
    var since: String?

    @Option(name: .long, help: "At most this many runs.")
    var limit: Int = 50

    @Option(name: .long, help: "Output format: text or json.")
    var format: ListFormat = .text

    @OptionGroup var history: HistoryOptions

    func validate() throws {
      if let since, parseTime(since) == nil {
        throw ValidationError(
          "--since '\(since)' is neither an ISO 8601 time (2026-12-24T00:00:00Z) nor an age (2h, 7d).")
      }
      guard limit >= 1 else { throw ValidationError("--limit must be at least 1, not \(limit).") }
    }

    func run() throws {
      let store = try history.open()
      let runs: [RunRecord]
      do {
        runs = try store.runs(job: job, since: since.flatMap { parseTime($0) }, limit: limit)
      } catch {
        throw CLIError(error.description, code: 2)
      }
      if format == .json {
        var w = JSONWriter()
        w.beginArray()
        for run in runs { RunsCommand.write(run, to: &w) }
        w.endArray()
        writeStandardOutput(w.bytes + [UInt8(ascii: "\n")])
        return
      }
      if runs.isEmpty {
        writeStandardOutput(
          Array("no runs recorded\(job.map { " for job '\($0)'" } ?? "") in \(store.path)\n".utf8))
        return
      }
      var rows = [["ID", "STARTED", "DURATION", "STATUS", "EXIT", "HOSTS ok/failed/all", "BY", "PLAYBOOK"]]
      for run in runs {
        rows.append([
          String(run.id), RunsCommand.localTime(run.startedAt),
          run.duration.map(RunsCommand.duration) ?? (run.status == "running" ? "running" : "-"), run.status,
          run.exitCode.map(String.init) ?? "-", "\(run.hostsOK)/\(run.hostsFailed)/\(run.hostsTotal)",
          run.job.map { "job \($0) (\(run.trigger))" }
            ?? (run.trigger == "manual"
              ? run.startedBy : "\(run.startedBy) (\(run.trigger)\(run.rerunOf.map { " of \($0)" } ?? ""))"),
          run.playbook,
        ])
      }
      writeStandardOutput(Array(RunsCommand.table(rows).utf8))
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one run: its hosts, tasks and output.")

    @Argument(help: "The run's id (from `sixty runs list`).")
    var id: Int64

    @Option(name: .long, help: "Only this host, with every task's output.")
    var host: String?

    @Option(name: .long, help: "Output format: text or json.")
    var format: ListFormat = .text

    @OptionGroup var history: HistoryOptions

    func run() throws {
      let store = try history.open()
      let run: RunRecord
      let hosts: [HostRecord]
      let notifications: [NotificationRecord]
      do {
        guard let found = try store.run(id: id) else {
          throw CLIError("there is no run \(id) in \(store.path); `sixty runs list` shows the runs.", code: 2)
        }
        run = found
        hosts = try store.hosts(runID: id, host: host)
        notifications = try store.notifications(runID: id)
      } catch let error as HistoryError {
        throw CLIError(error.description, code: 2)
      }
      if let host, hosts.isEmpty {
        throw CLIError("run \(id) has no host '\(host)'.", code: 2)
      }
      if format == .json {
        var w = JSONWriter()
        RunsCommand.write(run, to: &w, hosts: hosts, notifications: notifications)
        writeStandardOutput(w.bytes + [UInt8(ascii: "\n")])
        return
      }
      var text = "run \(run.id): \(run.status)\(run.exitCode.map { " (exit \($0))" } ?? "")\n"
      text += "  playbook   \(run.playbook)  sha256 \(run.playbookSHA256.prefix(16))…\n"
      if let inventory = run.inventory { text += "  inventory  \(inventory)\n" }
      if let policy = run.policy { text += "  policy     \(policy)\n" }
      if let limit = run.limit { text += "  limit      \(limit)\n" }
      text += "  started    \(RunsCommand.localTime(run.startedAt)) by \(run.startedBy) (\(run.trigger)"
      text += "\(run.job.map { ", job \($0)" } ?? "")\(run.rerunOf.map { ", rerun of \($0)" } ?? ""))\n"
      if let finished = run.finishedAt {
        text +=
          "  finished   \(RunsCommand.localTime(finished)) after \(RunsCommand.duration(finished.timeIntervalSince(run.startedAt)))\n"
      }
      if let message = run.message { text += "  note       \(message)\n" }
      text += "  hosts      \(run.hostsOK) ok, \(run.hostsFailed) failed, \(run.hostsTotal) targeted\n"
      for notification in notifications {
        text += "  notified   \(notification.kind) \(notification.target): \(notification.outcome)"
        text += notification.error.map { " (\($0))" } ?? ""
        text += "\n"
      }
      if !hosts.isEmpty {
        text += "\n"
        let plays = Set(hosts.map(\.play)).count
        var rows = [["HOST", "STATUS", "ok", "failed", "skipped", "push→auth", "NOTE"]]
        for record in hosts {
          rows.append([
            plays > 1 ? "\(record.play)/\(record.host)" : record.host, record.status,
            String(record.tasks.filter { $0.status == "ok" }.count),
            String(record.tasks.filter { $0.status == "failed" || $0.status == "timed out" }.count),
            String(record.tasks.filter { $0.status == "skipped" }.count),
            record.pushToAuthMilliseconds.map { "\($0) ms" } ?? "-", record.message ?? "",
          ])
        }
        text += RunsCommand.table(rows)
      }
      // Task detail: every task of the chosen host, or the failed tasks of every host.
      for record in hosts {
        for task in record.tasks where host != nil || task.status == "failed" || task.status == "timed out" {
          text += "\n\(record.host) | \(task.name) | \(task.status)"
          if let code = task.exitStatus { text += " (exit \(code))" }
          if let reason = task.reason { text += ": \(reason)" }
          text += "\n"
          for (stream, mark) in [(task.stdoutTail, "|"), (task.stderrTail, "!")] {
            guard let stream, !stream.isEmpty else { continue }
            for line in stream.split(separator: "\n", omittingEmptySubsequences: false).dropLast(
              stream.hasSuffix("\n") ? 1 : 0)
            {
              text += "  \(mark) \(line)\n"
            }
          }
        }
      }
      writeStandardOutput(Array(text.utf8))
    }
  }

  struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Write a recorded run's reports: HTML (with a per-host timeline), JSON or JUnit XML.",
      discussion: """
        With no file option, the JSON report is written to standard output. Task output in these \
        reports is what the history keeps: the last 4 KB of each stream.
        """)

    @Argument(help: "The run's id (from `sixty runs list`).")
    var id: Int64

    @Option(name: .long, help: "Write a self-contained HTML report to this file.")
    var html: String?

    @Option(name: .long, help: "Write the JSON report (the format of `sixty run --report`) to this file.")
    var json: String?

    @Option(name: .long, help: "Write JUnit XML to this file.")
    var junit: String?

    @OptionGroup var history: HistoryOptions

    func run() throws {
      let store = try history.open()
      let found: RunReport?
      do {
        found = try RunReport.load(from: store, runID: id)
      } catch {
        throw CLIError(error.description, code: 2)
      }
      guard let report = found else {
        throw CLIError("there is no run \(id) in \(store.path); `sixty runs list` shows the runs.", code: 2)
      }
      let outputs: [(path: String?, name: String, render: () -> [UInt8])] = [
        (html, "HTML report", { Array(report.html().utf8) }),
        (json, "JSON report", { report.json() }),
        (junit, "JUnit report", { Array(report.junit().utf8) }),
      ]
      guard outputs.contains(where: { $0.path != nil }) else {
        writeStandardOutput(report.json())
        return
      }
      for output in outputs {
        guard let path = output.path else { continue }
        do {
          try Data(output.render()).write(to: URL(fileURLWithPath: path))
        } catch {
          throw CLIError(
            "cannot write the \(output.name) of run \(id) to \(path): \(error.localizedDescription)", code: 2)
        }
        print("\(output.name): \(path)")
      }
    }
  }

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

  // MARK: - Formatting

  static func localTime(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
  }

  static func duration(_ seconds: TimeInterval) -> String {
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let total = Int(seconds.rounded())
    if total < 3600 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
    return "\(total / 3600)h\(String(format: "%02d", total / 60 % 60))m"
  }

  static func table(_ rows: [[String]]) -> String {
    guard let first = rows.first else { return "" }
    var widths = first.map(\.count)
    for row in rows {
      for (index, cell) in row.enumerated() where index < widths.count {
        widths[index] = max(widths[index], cell.count)
      }
    }
    var text = ""
    for row in rows {
      var line = ""
      for (index, cell) in row.enumerated() {
        line +=
          index == row.count - 1
          ? cell : cell.padding(toLength: widths[index] + 2, withPad: " ", startingAt: 0)
      }
      while line.hasSuffix(" ") { line.removeLast() }
      text += line + "\n"
    }
    return text
  }

  static func write(
    _ run: RunRecord, to w: inout JSONWriter, hosts: [HostRecord]? = nil,
    notifications: [NotificationRecord] = []
  ) {
    let iso = ISO8601DateFormatter()
    iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    w.beginObject()
    w.field("id", Int(run.id))
    w.field("status", run.status)
    if let code = run.exitCode { w.field("exit_code", code) }
    if let message = run.message { w.field("message", message) }
    w.field("started", iso.string(from: run.startedAt))
    if let finished = run.finishedAt { w.field("finished", iso.string(from: finished)) }
    if let duration = run.duration { w.field("duration_s", duration) }
    w.field("playbook", run.playbook)
    w.field("playbook_sha256", run.playbookSHA256)
    if let inventory = run.inventory { w.field("inventory", inventory) }
    if let policy = run.policy { w.field("policy", policy) }
    if let limit = run.limit { w.field("limit", limit) }
    w.key("extra_var_names")
    w.beginArray()
    for name in run.extraVarNames { w.value(name) }
    w.endArray()
    if let job = run.job { w.field("job", job) }
    w.field("trigger", run.trigger)
    w.field("started_by", run.startedBy)
    w.field("pid", run.pid)
    if let rerunOf = run.rerunOf { w.field("rerun_of", Int(rerunOf)) }
    if let scheduled = run.scheduledFor { w.field("scheduled_for", iso.string(from: scheduled)) }
    w.field("hosts_total", run.hostsTotal)
    w.field("hosts_ok", run.hostsOK)
    w.field("hosts_failed", run.hostsFailed)
    if let hosts {
      w.key("hosts")
      w.beginArray()
      for host in hosts {
        w.beginObject()
        w.field("play", host.play)
        w.field("host", host.host)
        w.field("address", host.address)
        w.field("user", host.user)
        w.field("status", host.status)
        if let message = host.message { w.field("message", message) }
        w.key("pushes")
        w.beginArray()
        for push in host.pushes { w.value(iso.string(from: push)) }
        w.endArray()
        if let auth = host.authenticatedAt { w.field("authenticated", iso.string(from: auth)) }
        if let ms = host.pushToAuthMilliseconds { w.field("push_to_auth_ms", ms) }
        if let started = host.startedAt { w.field("started", iso.string(from: started)) }
        if let finished = host.finishedAt { w.field("finished", iso.string(from: finished)) }
        w.field("reconnects", host.reconnects)
        w.key("tasks")
        w.beginArray()
        for task in host.tasks {
          w.beginObject()
          w.field("name", task.name)
          w.field("status", task.status)
          if let reason = task.reason { w.field("reason", reason) }
          if let code = task.exitStatus { w.field("exit_status", Int(code)) }
          w.field("attempts", task.attempts)
          if let started = task.startedAt { w.field("started", iso.string(from: started)) }
          if let finished = task.finishedAt { w.field("finished", iso.string(from: finished)) }
          if let out = task.stdoutTail { w.field("stdout_tail", out) }
          if let err = task.stderrTail { w.field("stderr_tail", err) }
          w.endObject()
        }
        w.endArray()
        w.endObject()
      }
      w.endArray()
      w.key("notifications")
      w.beginArray()
      for notification in notifications {
        w.beginObject()
        w.field("kind", notification.kind)
        w.field("target", notification.target)
        w.field("outcome", notification.outcome)
        w.field("attempts", notification.attempts)
        if let error = notification.error { w.field("error", error) }
        w.field("at", iso.string(from: notification.at))
        w.endObject()
      }
      w.endArray()
    }
    w.endObject()
  }
}
