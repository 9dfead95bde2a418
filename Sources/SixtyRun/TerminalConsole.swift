import Foundation
import SixtyCore
import SixtyScheduler

/// What `sixty run` shows on a terminal or in a log: task output as it arrives (or grouped at the
/// end), the progress line, the recap.
public final class TerminalConsole: RunConsole {
  let printer = LinePrinter()
  let groupOutput: Bool
  /// The live status line, on a terminal only.
  let board: ProgressBoard?
  /// Holds back a host's "-- end" line until the output of its tasks still in flight (a task
  /// killed at its timeout or by a signal) has been printed.
  let endings = EndLines()

  public init(groupOutput: Bool, progress: Bool) {
    self.groupOutput = groupOutput
    board = progress && isatty(1) == 1 ? ProgressBoard(printer: printer) : nil
  }

  public func handle(_ event: RunEvent) {
    switch event {
    case .diagnostics(let diagnostics): Self.printDiagnostics(diagnostics)
    case .plan(let text): writeStandardOutput(Array(text.utf8))
    case .warning(let text): FileHandle.standardError.write(Data((text + "\n").utf8))
    case .line(let text): printer.line(text)
    case .detail(_, let text): FileHandle.standardError.write(Data((Self.printable(text) + "\n").utf8))
    case .pushFailover(let failover):
      FileHandle.standardError.write(Data((Self.printable(failover.text) + "\n").utf8))
    case .playStarted(let name, let hosts):
      flushEndings()
      printer.line("== play: \(name) (\(hosts) host\(hosts == 1 ? "" : "s"))")
      board?.begin(play: name, hosts: hosts)
    case .scheduler(let event):
      board?.handle(event)
      switch event {
      case .start(let host, _): endings.started(host)
      case .end(let host, _):
        if endings.shouldPrintEnd(host, line: "-- \(event)") { printer.line("-- \(event)") }
      case .retry, .reconnect: printer.line("-- \(event)")
      default: break
      }
    case .taskFinished(_, let task, let capture):
      defer { if let line = endings.finished(capture.host) { printer.line(line) } }
      if groupOutput {
        printer.line(String(format: "%@ | %@ | exit %d", capture.host, task, capture.status))
        return
      }
      let seconds = capture.ended.timeIntervalSince(capture.started)
      var text = String(format: "%@ | %@ | exit %d (%.2f s)\n", capture.host, task, capture.status, seconds)
      for line in capture.stdout.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(
        capture.stdout.text.hasSuffix("\n") ? 1 : 0) where !capture.stdout.bytes.isEmpty
      {
        text += "\(capture.host) | \(line)\n"
      }
      for line in capture.stderr.text.split(separator: "\n").prefix(200) {
        text += "\(capture.host) ! \(line)\n"
      }
      printer.write(text)
    case .finished(let summary):
      flushEndings()
      board?.stop()
      if groupOutput { printer.write(summary.outputs.grouped()) }
      printer.write(Self.recap(summary))
    }
  }

  func flushEndings() {
    for line in endings.flush() { printer.line(line) }
  }

  /// `text` with every scalar that changes how a terminal shows what follows (control
  /// characters, bidi overrides, line separators) written as `\u{…}`, so a host name or command
  /// from an inventory cannot forge a line.
  static func printable(_ text: String) -> String {
    var output = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      if SafeText.needsEscape(scalar) {
        output.append(contentsOf: ("\\u{" + String(scalar.value, radix: 16) + "}").unicodeScalars)
      } else {
        output.append(scalar)
      }
    }
    return String(output)
  }

  /// Prints diagnostics to standard error, one per line, with a count when there are several.
  public static func printDiagnostics(_ diagnostics: [Diagnostic]) {
    guard !diagnostics.isEmpty else { return }
    var text = diagnostics.map(\.description).joined(separator: "\n")
    text += "\n"
    let errors = diagnostics.filter { $0.severity == .error }.count
    let warnings = diagnostics.filter { $0.severity == .warning }.count
    if errors + warnings > 1 {
      text += "\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s").\n"
    }
    FileHandle.standardError.write(Data(text.utf8))
  }

  /// The table of hosts that ends every run.
  static func recap(_ summary: RunSummary) -> String {
    let results = summary.plays
    var text = "\nRECAP\n"
    text +=
      "host".padding(toLength: 20, withPad: " ", startingAt: 0)
      + " status       ok  failed  skipped  push→auth\n"
    for play in results {
      let result = play.result
      if results.count > 1 { text += "[\(play.name)]\n" }
      for (index, host) in result.hosts.enumerated() {
        let ok = host.tasks.filter { if case .ok = $0 { true } else { false } }.count
        let failed = host.tasks.filter {
          switch $0 {
          case .failed, .timedOut: true
          default: false
          }
        }.count
        let skipped = host.tasks.filter { if case .skipped = $0 { true } else { false } }.count
        var latency = "-"
        if let auth = host.authenticated, let push = host.pushes.last(where: { $0 <= auth }) {
          latency = String(format: "%.0f ms", (auth - push) * 1000)
        }
        text += play.hosts[index].padding(toLength: 20, withPad: " ", startingAt: 0)
        text += " " + host.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
        text += String(format: " %3d  %6d  %7d  %@", ok, failed, skipped, latency)
        if let message = host.message { text += "  (\(message))" }
        text += "\n"
      }
      switch result.outcome {
      case .completed: break
      case .aborted(let why): text += "run aborted: \(why)\n"
      case .interrupted: text += "run interrupted\n"
      case .timedOut: text += "run timed out\n"
      }
    }
    if let name = summary.stoppedBefore { text += "run interrupted before play '\(name)' started\n" }
    return text
  }
}

/// Per host, the tasks started and not yet printed, and the "-- end" line held back until they are.
// @unchecked: everything mutable is behind `lock`.
final class EndLines: @unchecked Sendable {
  let lock = NSLock()
  var inFlight: [String: Int] = [:]
  var held: [String: String] = [:]
  var order: [String] = []

  func started(_ host: String) { lock.withLock { inFlight[host, default: 0] += 1 } }

  /// True when the host's end can be printed now; otherwise `line` waits for its tasks' output.
  func shouldPrintEnd(_ host: String, line: String) -> Bool {
    lock.withLock {
      guard inFlight[host, default: 0] > 0 else { return true }
      held[host] = line
      order.append(host)
      return false
    }
  }

  /// A task's output was printed; the host's held end line, when this was the last one.
  func finished(_ host: String) -> String? {
    lock.withLock {
      let left = max(0, inFlight[host, default: 0] - 1)
      inFlight[host] = left
      guard left == 0, let line = held.removeValue(forKey: host) else { return nil }
      order.removeAll { $0 == host }
      return line
    }
  }

  /// The end lines still held (tasks whose output never came), in the order the hosts ended.
  func flush() -> [String] {
    lock.withLock {
      let lines = order.compactMap { held[$0] }
      held = [:]
      order = []
      inFlight = [:]
      return lines
    }
  }
}
