import Foundation
import SixtyCore
import SixtyHistory

/// `sixty runs list`: recorded runs, newest first, as a table or JSON.
public struct RunListing: Sendable {
  public var runs: [RunRecord]
  /// The job the listing is limited to, if any.
  public var job: String?
  /// The history file, named when there is nothing to list.
  public var historyPath: String

  /// The runs of `job` (or every run) started since `since`, at most `limit`, newest first.
  public static func load(from history: History, job: String?, since: Date?, limit: Int) throws(HistoryError)
    -> RunListing
  {
    RunListing(
      runs: try history.runs(job: job, since: since, limit: limit), job: job, historyPath: history.path)
  }

  /// An array of run documents (`RunDocument`) without hosts.
  public func json() -> [UInt8] { RunDocument.json(runs: runs) }

  /// One line per run, with a header; or a sentence when there are none.
  public func text() -> String {
    if runs.isEmpty {
      return "no runs recorded\(job.map { " for job '\($0)'" } ?? "") in \(historyPath)\n"
    }
    var rows = [["ID", "STARTED", "DURATION", "STATUS", "EXIT", "HOSTS ok/failed/all", "BY", "PLAYBOOK"]]
    for run in runs {
      rows.append([
        String(run.id), RunText.localTime(run.startedAt),
        run.duration.map(RunText.duration) ?? (run.status == .running ? "running" : "-"),
        run.status.rawValue + (run.shards.map { " (shards \(run.shardsEnded)/\($0) ended)" } ?? ""),
        run.exitCode.map(String.init) ?? "-", "\(run.hostsOK)/\(run.hostsFailed)/\(run.hostsTotal)",
        run.job.map { "job \($0) (\(run.trigger.rawValue))" }
          ?? (run.trigger == .manual
            ? run.startedBy
            : "\(run.startedBy) (\(run.trigger.rawValue)\(run.rerunOf.map { " of \($0)" } ?? ""))"),
        run.playbook,
      ])
    }
    return RunText.table(rows)
  }
}

/// `sixty runs show`: one recorded run with its hosts, tasks, output and notifications.
public struct RunDetail: Sendable {
  public var run: RunRecord
  public var plays: [PlayRecord]
  public var hosts: [HostRecord]
  public var notifications: [NotificationRecord]
  /// The one host shown (with every task's output), if one was chosen.
  public var host: String?
  /// A sharded run's shards, each with its state.
  public var shards: [ShardRecord] = []

  /// Run `id` (its number, or a sharded run's key) with its hosts (or only `host`).
  /// - Throws: `HistoryError` when the history cannot be read, there is no such run, or the run
  ///   has no such host.
  public static func load(from history: History, run text: String, host: String?) throws(HistoryError)
    -> RunDetail
  {
    if let id = Int64(text) { return try load(from: history, id: id, host: host) }
    guard let run = try history.run(key: text) else {
      throw HistoryError(
        "there is no run with id or run id \(SafeText.quoted(text, limit: 140)) in \(history.path); `sixty runs list` shows the runs."
      )
    }
    return try load(from: history, id: run.id, host: host)
  }

  /// Run `id` with its hosts (or only `host`).
  /// - Throws: `HistoryError` when the history cannot be read, there is no such run, or the run
  ///   has no such host.
  public static func load(from history: History, id: Int64, host: String?) throws(HistoryError) -> RunDetail {
    guard let run = try history.run(id: id) else {
      throw HistoryError("there is no run \(id) in \(history.path); `sixty runs list` shows the runs.")
    }
    let hosts = try history.hosts(runID: id, host: host)
    if let host, hosts.isEmpty {
      throw HistoryError("run \(id) has no host '\(host)'.")
    }
    return RunDetail(
      run: run, plays: try history.plays(runID: id), hosts: hosts,
      notifications: try history.notifications(runID: id), host: host,
      shards: run.shards == nil ? [] : try history.shards(runID: id))
  }

  /// The run document (`RunDocument`) with these hosts and notifications.
  public func json() -> [UInt8] {
    RunDocument.json(run: run, plays: plays, hosts: hosts, notifications: notifications, shards: shards)
  }

  /// The run's facts, a table of its hosts, and the tasks worth reading: every task of the
  /// chosen host, or the failed tasks of every host.
  public func text() -> String {
    var text = "run \(run.id): \(run.status.rawValue)\(run.exitCode.map { " (exit \($0))" } ?? "")\n"
    if let command = RecordedCommand(run) {
      text += "  command    \(command.line) on \(SafeText.quoted(command.selector))\n"
    } else {
      text += "  playbook   \(run.playbook)  sha256 \(run.playbookSHA256.prefix(16))…\n"
    }
    if let inventory = run.inventory { text += "  inventory  \(inventory)\n" }
    if let policy = run.policy { text += "  policy     \(policy)\n" }
    if let limit = run.limit { text += "  limit      \(limit)\n" }
    text += "  started    \(RunText.localTime(run.startedAt)) by \(run.startedBy) (\(run.trigger.rawValue)"
    text += "\(run.job.map { ", job \($0)" } ?? "")\(run.rerunOf.map { ", rerun of \($0)" } ?? ""))\n"
    if let finished = run.finishedAt {
      text +=
        "  finished   \(RunText.localTime(finished)) after \(RunText.duration(finished.timeIntervalSince(run.startedAt)))\n"
    }
    if let message = run.message { text += "  note       \(message)\n" }
    text += "  hosts      \(run.hostsOK) ok, \(run.hostsFailed) failed, \(run.hostsTotal) targeted\n"
    if let count = run.shards {
      text += "  run id     \(run.runKey ?? "-")\n"
      text += "  shards     \(run.shardsEnded)/\(count) ended\n"
      for shard in shards {
        text += "  shard \(shard.shard)/\(count)  \(shard.status.rawValue)"
        text += shard.exitCode.map { " (exit \($0))" } ?? ""
        text += ", pid \(shard.pid), started by \(shard.startedBy)"
        text += shard.message.map { ": \($0)" } ?? ""
        text += "\n"
      }
    }
    for notification in notifications {
      text +=
        "  notified   \(notification.kind.rawValue) \(notification.target): \(notification.outcome.rawValue)"
      text += notification.error.map { " (\($0))" } ?? ""
      text += "\n"
    }
    if !hosts.isEmpty {
      text += "\n"
      let plays = Set(hosts.map(\.play)).count
      let sharded = run.shards != nil
      let header: [String] = ["HOST", "STATUS", "ok", "failed", "skipped", "push→auth", "NOTE"]
      var rows: [[String]] = [sharded ? ["SHARD"] + header : header]
      for record in hosts {
        let row: [String] = [
          plays > 1 ? "\(record.play)/\(record.host)" : record.host, record.status.rawValue,
          String(record.tasks.filter { $0.status == .ok }.count),
          String(record.tasks.filter { $0.status == .failed || $0.status == .timedOut }.count),
          String(record.tasks.filter { $0.status == .skipped }.count),
          record.pushToAuthMilliseconds.map { "\($0) ms" } ?? "-", record.message ?? "",
        ]
        let shard: String = record.shard.map(String.init) ?? "-"
        rows.append(sharded ? [shard] + row : row)
      }
      text += RunText.table(rows)
    }
    for record in hosts {
      for task in record.tasks where host != nil || task.status == .failed || task.status == .timedOut {
        text += "\n\(record.host) | \(task.name) | \(task.status.rawValue)"
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
    return text
  }
}

/// Text helpers of the `sixty runs` views.
public enum RunText {
  /// A time as ISO 8601 to the second, in UTC.
  public static func localTime(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
  }

  /// `4.2s`, `3m07s` or `2h05m`.
  public static func duration(_ seconds: TimeInterval) -> String {
    if seconds < 60 { return String(format: "%.1fs", seconds) }
    let total = Int(seconds.rounded())
    if total < 3600 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
    return "\(total / 3600)h\(String(format: "%02d", total / 60 % 60))m"
  }

  /// Rows as left-aligned columns two spaces apart, with no trailing spaces.
  public static func table(_ rows: [[String]]) -> String {
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
}

/// The part of a `sixty exec` run's recorded command that the views show.
struct RecordedCommand: Decodable {
  var selector: String
  var command: [String]

  init?(_ run: RunRecord) {
    guard let text = run.adHocCommand,
      let decoded = try? JSONDecoder().decode(RecordedCommand.self, from: Data(text.utf8))
    else { return nil }
    self = decoded
  }

  /// The command's words, each quoted with its control characters escaped (it is the user's text,
  /// and may come from anywhere).
  var line: String { command.map { SafeText.quoted($0, limit: 200) }.joined(separator: " ") }
}
