import ArgumentParser
import Foundation
import SixtyCore
import SixtyHistory
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
