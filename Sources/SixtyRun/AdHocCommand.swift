import Foundation
import SixtyCore

/// `sixty exec`: one command across the hosts a selector picks, as a one-task playbook built in
/// memory, so it goes through the same checks, policy and planning as a playbook file.
public struct AdHocCommand: Sendable, Codable, Equatable {
  /// What the run's playbook is called in the history, the reports and diagnostics.
  public static let label = "sixty exec"

  /// Which hosts: a group, a host, tag=value, a glob, or 'all'.
  public var selector: String
  /// The command: one argument is a shell command line (run by `sh -c`, as ssh and pssh hand a
  /// single argument to the remote user's shell); several are an argument list, run without a
  /// shell and quoted one by one.
  public var command: [String]
  public var forks: Int?
  /// Rolling batches, e.g. ["1", "25%", "100%"].
  public var batches: [String]?
  public var maxFailures: String?
  /// The command's timeout on each host (e.g. "30s").
  public var timeout: String?
  public var become = false

  public init(selector: String, command: [String]) {
    self.selector = selector
    self.command = command
  }

  /// As the history records it (JSON), for `sixty runs rerun`.
  public var recorded: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
  }

  /// A command as the history recorded it.
  /// - Throws: `DecodingError` when the text is not a recorded command.
  public init(recorded text: String) throws {
    self = try JSONDecoder().decode(AdHocCommand.self, from: Data(text.utf8))
  }

  /// The playbook, as JSON (which is YAML).
  public var playbookText: String {
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
      for part in batches { w.value(part) }
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
    if command.count == 1 {
      w.field("shell", command[0])
    } else {
      w.key("command")
      w.beginArray()
      for argument in command { w.value(argument) }
      w.endArray()
    }
    if become { w.field("become", true) }
    w.endObject()
    w.endArray()
    w.endObject()
    return String(decoding: w.bytes, as: UTF8.self)
  }
}
