import Foundation
import SixtyExecution

/// Every task's output, for `--group-output`, the reports and the history.
// @unchecked: `entries` and `latest`, the only mutable state, are behind `lock`.
public final class OutputCollector: @unchecked Sendable {
  /// A task's attempt as the executor captured it.
  struct Entry {
    var play: String
    var task: String
    var capture: TaskCapture
    var host: String { capture.host }
    var stdout: String { capture.stdout.text }
    var stderr: String { capture.stderr.text }
    var status: Int32 { capture.status }
    var started: Date { capture.started }
    var ended: Date { capture.ended }
  }
  struct Key: Hashable {
    var play: String
    var host: String
    var task: String
  }
  // `lock` protects `entries` and `latest`.
  let lock = NSLock()
  var entries: [Entry] = []
  /// The index in `entries` of each task's last attempt.
  var latest: [Key: Int] = [:]

  func add(play: String, task: String, capture: TaskCapture) {
    lock.withLock {
      latest[Key(play: play, host: capture.host, task: task)] = entries.count
      entries.append(Entry(play: play, task: task, capture: capture))
    }
  }

  /// The last attempt's output of a task.
  func entry(play: String, host: String, task: String) -> Entry? {
    lock.withLock { latest[Key(play: play, host: host, task: task)].map { entries[$0] } }
  }

  /// Per task, hosts with identical output merged (like `dshbak -c`).
  public func grouped() -> String {
    let all = lock.withLock { entries }
    var text = ""
    var tasks: [String] = []
    for entry in all where !tasks.contains(entry.task) { tasks.append(entry.task) }
    for task in tasks {
      var groups: [(key: String, hosts: [String])] = []
      for entry in all where entry.task == task {
        let key =
          "exit \(entry.status)\n" + entry.stdout + (entry.stderr.isEmpty ? "" : "[stderr]\n" + entry.stderr)
        if let index = groups.firstIndex(where: { $0.key == key }) {
          groups[index].hosts.append(entry.host)
        } else {
          groups.append((key, [entry.host]))
        }
      }
      for group in groups {
        text += "---------------- \(task): \(group.hosts.joined(separator: ",")) ----------------\n"
        text += group.key.hasSuffix("\n") ? group.key : group.key + "\n"
      }
    }
    return text
  }
}
