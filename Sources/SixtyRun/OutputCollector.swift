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

  /// Per task, hosts with identical output merged (like `dshbak -c`): each task's blocks once, in
  /// the order the tasks first finished, each host's last attempt only, the hosts of a block in
  /// name order (`host-2` before `host-10`) and the blocks in the order of their first host. A
  /// task of a later play with the same name is a task of its own, its play named.
  public func grouped() -> String {
    let (all, last): ([Entry], [Key: Int]) = lock.withLock { (entries, latest) }
    struct TaskKey: Hashable {
      var play: String
      var task: String
    }
    var order: [TaskKey] = []
    var hosts: [TaskKey: [Entry]] = [:]
    for (index, entry) in all.enumerated()
    where last[Key(play: entry.play, host: entry.host, task: entry.task)] == index {
      let key = TaskKey(play: entry.play, task: entry.task)
      if hosts[key] == nil { order.append(key) }
      hosts[key, default: []].append(entry)
    }
    let plays = Set(all.map { $0.play })
    var text = ""
    for key in order {
      var groups: [(output: String, hosts: [String])] = []
      var indexOfOutput: [String: Int] = [:]
      for entry in hosts[key]!.sorted(by: { HostOrder.precedes($0.host, $1.host) }) {
        let output =
          "exit \(entry.status)\n" + entry.stdout + (entry.stderr.isEmpty ? "" : "[stderr]\n" + entry.stderr)
        if let index = indexOfOutput[output] {
          groups[index].hosts.append(entry.host)
        } else {
          indexOfOutput[output] = groups.count
          groups.append((output, [entry.host]))
        }
      }
      let title = plays.count > 1 ? "\(key.play) / \(key.task)" : key.task
      for group in groups {
        text += "---------------- \(title): \(group.hosts.joined(separator: ",")) ----------------\n"
        text += group.output.hasSuffix("\n") ? group.output : group.output + "\n"
      }
    }
    return text
  }
}

/// Host names in the order people expect: runs of digits compare as numbers, so `web-2` comes
/// before `web-10`; otherwise byte order (names are compared on their UTF-8 bytes, never on
/// `Character`s).
public enum HostOrder {
  public static func precedes(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    var i = 0
    var j = 0
    while i < x.count && j < y.count {
      if isDigit(x[i]) && isDigit(y[j]) {
        var iEnd = i
        while iEnd < x.count && isDigit(x[iEnd]) { iEnd += 1 }
        var jEnd = j
        while jEnd < y.count && isDigit(y[jEnd]) { jEnd += 1 }
        // Compare the numbers without leading zeros by length, then digit by digit.
        var iStart = i
        while iStart < iEnd - 1 && x[iStart] == UInt8(ascii: "0") { iStart += 1 }
        var jStart = j
        while jStart < jEnd - 1 && y[jStart] == UInt8(ascii: "0") { jStart += 1 }
        if iEnd - iStart != jEnd - jStart { return iEnd - iStart < jEnd - jStart }
        for (p, q) in zip(x[iStart..<iEnd], y[jStart..<jEnd]) where p != q { return p < q }
        // Equal numbers: fewer leading zeros first, then go on.
        if iEnd - i != jEnd - j { return iEnd - i < jEnd - j }
        i = iEnd
        j = jEnd
      } else {
        if x[i] != y[j] { return x[i] < y[j] }
        i += 1
        j += 1
      }
    }
    return x.count - i < y.count - j
  }

  @inline(__always) static func isDigit(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
  }
}
