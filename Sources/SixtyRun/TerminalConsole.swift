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
    case .playStarted(let name, let hosts):
      printer.line("== play: \(name) (\(hosts) host\(hosts == 1 ? "" : "s"))")
      board?.begin(play: name, hosts: hosts)
    case .scheduler(let event):
      board?.handle(event)
      switch event {
      case .end, .retry, .reconnect: printer.line("-- \(event)")
      default: break
      }
    case .taskFinished(_, let task, let capture):
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
      board?.stop()
      if groupOutput { printer.write(summary.outputs.grouped()) }
      printer.write(Self.recap(summary))
    }
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
