import Foundation
import SixtyHistory

extension RunReport {
  /// JUnit XML (`--junit`): a suite per play, a case per host and task, and a `connect` case for
  /// a host that never got to run its tasks.
  public func junit() -> String {
    var xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"\(Self.xmlEscape(playbook))\">\n"
    for play in plays {
      var cases = ""
      var failures = 0
      var skipped = 0
      var count = 0
      for host in play.hosts {
        let name = Self.xmlEscape(host.host)
        let neverRan = host.status == .unreachable || host.status == .notStarted
        if host.tasks.isEmpty || neverRan {
          count += 1
          cases += "    <testcase classname=\"\(name)\" name=\"connect\">"
          if host.status == .unreachable {
            failures += 1
            cases += "<failure message=\"\(Self.xmlEscape(host.message ?? "unreachable"))\"/>"
          } else if host.status == .notStarted {
            skipped += 1
            cases += "<skipped message=\"\(Self.xmlEscape(host.message ?? "not started"))\"/>"
          }
          cases += "</testcase>\n"
          if neverRan { continue }
        }
        for task in host.tasks {
          count += 1
          cases += "    <testcase classname=\"\(name)\" name=\"\(Self.xmlEscape(task.name))\">"
          switch task.status {
          case .failed:
            failures += 1
            cases += "<failure message=\"\(Self.xmlEscape(task.reason ?? "failed"))\"/>"
          case .timedOut:
            failures += 1
            cases += "<failure message=\"timed out\"/>"
          case .skipped:
            skipped += 1
            cases += "<skipped message=\"\(Self.xmlEscape(task.reason ?? "skipped"))\"/>"
          case .pending, .ok: break
          }
          if task.startedAt != nil {
            cases += "<system-out>\(Self.xmlEscape(task.stdoutTail ?? ""))</system-out>"
            cases += "<system-err>\(Self.xmlEscape(task.stderrTail ?? ""))</system-err>"
          }
          cases += "</testcase>\n"
        }
      }
      xml +=
        "  <testsuite name=\"\(Self.xmlEscape(play.name))\" tests=\"\(count)\" failures=\"\(failures)\" skipped=\"\(skipped)\">\n"
      xml += cases + "  </testsuite>\n"
    }
    return xml + "</testsuites>\n"
  }

  /// Text as XML character data or an attribute value; characters XML 1.0 cannot carry become `?`.
  static func xmlEscape(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "\n", "\t": out.unicodeScalars.append(scalar)
      default:
        if scalar.value < 0x20 || (0xD800...0xDFFF).contains(scalar.value) || scalar.value == 0xFFFE
          || scalar.value == 0xFFFF
        {
          out += "?"
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out
  }
}
