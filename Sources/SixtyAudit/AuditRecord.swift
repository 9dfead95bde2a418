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

  /// The record's JSON body without the chain fields; keys in a fixed order.
  func body(sequence: Int, previous: String) -> [UInt8] {
    var w = JSONWriter()
    w.beginObject()
    w.field("seq", sequence)
    w.field("time", AuditRecord.timeFormat.format(time))
    w.field("prev", previous)
    w.field("event", event)
    w.field("request_id", requestID)
    w.field("principal", principal)
    w.field("source", source)
    w.field("instance", instance)
    w.field("os_user", osUser)
    w.field("fingerprint", fingerprint)
    w.field("outcome", outcome)
    w.field("reason", reason)
    w.endObject()
    return w.bytes
  }
}
