import Foundation
import SixtyCore

/// One audit event: a key push (accepted or refused) or an agent fetch.
public struct AuditRecord: Sendable, Equatable {
  public var time: Date
  public var event: String
  public var requestID: String
  public var principal: String?
  public var source: String?
  public var instance: String?
  public var osUser: String?
  public var fingerprint: String?
  public var outcome: String
  public var reason: String?

  public init(
    time: Date, event: String, requestID: String, principal: String?, source: String?, instance: String?,
    osUser: String?, fingerprint: String?, outcome: String, reason: String? = nil
  ) {
    self.time = time
    self.event = event
    self.requestID = requestID
    self.principal = principal
    self.source = source
    self.instance = instance
    self.osUser = osUser
    self.fingerprint = fingerprint
    self.outcome = outcome
    self.reason = reason
  }

  static let timeFormat: Date.ISO8601FormatStyle = .iso8601.year().month().day().time(
    includingFractionalSeconds: true
  )
  .timeZone(separator: .omitted).dateSeparator(.dash).timeSeparator(.colon)

  /// How many bytes of JSON text one field may take in a record (its escaped form), before the
  /// truncation marker: every field but `reason`.
  public static let fieldLimit = 512
  /// The same for `reason`, which quotes error messages.
  public static let reasonLimit = 1024

  /// The record as the `sequence`-th line of a chain after `previous` (without a newline), and
  /// its hash: what `AuditLog` writes and `AuditVerifier` checks, for stores other than a file.
  public func chained(sequence: Int, previous: String) -> (line: [UInt8], hash: String) {
    var line = body(sequence: sequence, previous: previous)
    let hash = AuditLog.hash(line)
    line.removeLast()  // "}"
    line.append(contentsOf: Array(",\"hash\":\"\(hash)\"}".utf8))
    return (line, hash)
  }

  /// The record's body before it is chained (sequence 0, no previous hash): what a store keeps
  /// while the record waits for its place in the chain (see `chain(unchained:sequence:previous:)`).
  public var unchained: String { String(decoding: body(sequence: 0, previous: ""), as: UTF8.self) }

  /// The line and hash that `chained(sequence:previous:)` gives for the record whose `unchained`
  /// body is `text`; nil when `text` is not such a body.
  public static func chain(unchained text: String, sequence: Int, previous: String) -> (
    line: [UInt8], hash: String
  )? {
    let bytes = Array(text.utf8)
    let head = Array("{\"seq\":0,\"time\":\"".utf8)
    let prev = Array("\",\"prev\":\"\",".utf8)
    guard bytes.starts(with: head), bytes.last == UInt8(ascii: "}") else { return nil }
    // The time holds no quote: the first `","prev":"",` after it ends it.
    var index = head.count
    while index + prev.count <= bytes.count, !bytes[index..<(index + prev.count)].elementsEqual(prev) {
      guard bytes[index] != UInt8(ascii: "\"") else { return nil }
      index += 1
    }
    guard index + prev.count <= bytes.count else { return nil }
    var line = Array("{\"seq\":\(sequence),\"time\":\"".utf8)
    line += bytes[head.count..<index]
    line += Array("\",\"prev\":\"\(previous)\",".utf8)
    line += bytes[(index + prev.count)...]
    let hash = AuditLog.hash(line)
    line.removeLast()  // "}"
    line.append(contentsOf: Array(",\"hash\":\"\(hash)\"}".utf8))
    return (line, hash)
  }

  /// The record's JSON body without the chain fields; keys in a fixed order. Every string is
  /// bounded (`bounded(_:limit:)`), so a record stays under a few kilobytes whatever its input.
  func body(sequence: Int, previous: String) -> [UInt8] {
    func bound(_ text: String?) -> String? { text.map { AuditRecord.bounded($0) } }
    var w = JSONWriter()
    w.beginObject()
    w.field("seq", sequence)
    w.field("time", AuditRecord.timeFormat.format(time))
    w.field("prev", previous)
    w.field("event", AuditRecord.bounded(event))
    w.field("request_id", AuditRecord.bounded(requestID))
    w.field("principal", bound(principal))
    w.field("source", bound(source))
    w.field("instance", bound(instance))
    w.field("os_user", bound(osUser))
    w.field("fingerprint", bound(fingerprint))
    w.field("outcome", AuditRecord.bounded(outcome))
    w.field("reason", reason.map { AuditRecord.bounded($0, limit: AuditRecord.reasonLimit) })
    w.endObject()
    return w.bytes
  }

  /// `text` when its JSON-escaped form fits in `limit` bytes; otherwise its longest prefix of whole
  /// Unicode scalars that fits, followed by `…[truncated, N bytes]` where N is the UTF-8 length
  /// of the whole original text.
  public static func bounded(_ text: String, limit: Int = fieldLimit) -> String {
    var cost = 0
    var end = text.unicodeScalars.startIndex
    for index in text.unicodeScalars.indices {
      let scalar = text.unicodeScalars[index]
      var scalarCost = 0
      switch scalar.value {
      case 0x22, 0x5C, 0x0A, 0x0D, 0x09: scalarCost = 2  // \" \\ \n \r \t
      case 0..<0x20, 0x7F: scalarCost = 6  // \u00XX
      default: scalarCost = UTF8.width(scalar)
      }
      if cost + scalarCost > limit {
        var kept = String(text.unicodeScalars[..<end])
        kept += "…[truncated, \(text.utf8.count) bytes]"
        return kept
      }
      cost += scalarCost
      end = text.unicodeScalars.index(after: index)
    }
    return text
  }
}
