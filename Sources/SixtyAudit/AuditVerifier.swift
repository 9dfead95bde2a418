import Foundation

/// Checks an audit log's chain and reads its records.
public enum AuditVerifier {
  public struct Summary: Sendable {
    public var records: Int
    public var head: String
  }

  struct Parsed {
    var hash: String
    var sequence: Int
    var object: [String: Any]
  }

  /// Verifies every line of the log at `path`.
  /// - Returns: the number of records and the head hash.
  /// - Throws: `AuditError` naming the first bad line and what is wrong with it.
  public static func verify(path: String) throws -> Summary {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw AuditError(message: "cannot read the audit log '\(path)'.", line: nil)
    }
    var previous = AuditLog.genesis
    var sequence = 0
    var number = 0
    for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      number += 1
      if line.isEmpty {
        if number == data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count {
          break
        }
        throw AuditError(message: "line \(number) is empty; expected a record.", line: number)
      }
      switch check(line: Array(line), number: number, previous: previous, sequence: sequence + 1) {
      case .success(let parsed):
        previous = parsed.hash
        sequence = parsed.sequence
      case .failure(let error): throw error
      }
    }
    return Summary(records: sequence, head: previous)
  }

  static func check(line: [UInt8], number: Int, previous: String?, sequence: Int?) -> Result<
    Parsed, AuditError
  > {
    let marker = Array(",\"hash\":\"".utf8)
    // A record ends with `,"hash":"` + 64 hex digits + `"}`.
    let suffix = marker.count + 64 + 2
    guard line.count > suffix, line.last == UInt8(ascii: "}"),
      Array(line[(line.count - suffix)..<(line.count - 66)]) == marker
    else {
      return .failure(AuditError(message: "line \(number) does not end with a record hash.", line: number))
    }
    let bodyEnd = line.count - suffix
    let stored = String(decoding: line[(bodyEnd + marker.count)..<(line.count - 2)], as: UTF8.self)
    var body = Array(line[..<bodyEnd])
    body.append(UInt8(ascii: "}"))
    let computed = AuditLog.hash(body)
    guard computed == stored else {
      return .failure(
        AuditError(message: "line \(number) was modified: its content does not match its hash.", line: number)
      )
    }
    guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any],
      let prev = object["prev"] as? String, let seq = object["seq"] as? Int
    else {
      return .failure(AuditError(message: "line \(number) is not a valid audit record.", line: number))
    }
    if let previous, prev != previous {
      return .failure(
        AuditError(
          message:
            "line \(number) does not follow the record before it (its 'prev' is \(prev.prefix(12))…, expected \(previous.prefix(12))…): a record was removed, inserted or reordered here.",
          line: number))
    }
    if let sequence, seq != sequence {
      return .failure(
        AuditError(
          message:
            "line \(number) has sequence number \(seq), expected \(sequence): records were removed or reordered.",
          line: number))
    }
    return .success(Parsed(hash: computed, sequence: seq, object: object))
  }

  /// The records of a log as readable lines, oldest first (the chain is not checked; use `verify`).
  public static func show(path: String) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw AuditError(message: "cannot read the audit log '\(path)'.", line: nil)
    }
    var lines: [String] = []
    for (index, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
      guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
        lines.append("line \(index + 1): (not a record)")
        continue
      }
      func field(_ key: String) -> String { (object[key] as? String) ?? "-" }
      var text = "\(field("time"))  #\(object["seq"] as? Int ?? 0)  \(field("event")) \(field("outcome"))"
      text += "  principal=\(field("principal")) source=\(field("source")) instance=\(field("instance"))"
      text += " user=\(field("os_user")) key=\(field("fingerprint")) request=\(field("request_id"))"
      if let reason = object["reason"] as? String { text += "  reason: \(reason)" }
      lines.append(text)
    }
    return lines
  }
}
