import Crypto
import Foundation
import Logging
import SixtyAgentCore
import SixtyAudit
import SixtyCore

/// An HTTP request as the broker sees it, independent of the server framework.
public struct BrokerRequest: Sendable {
  public var method: String
  /// The path without the query string.
  public var path: String
  /// The raw query string (without `?`).
  public var query: String
  public var headers: [(name: String, value: String)]
  public var body: [UInt8]
  public var remoteAddress: String?

  public init(
    method: String, path: String, query: String = "", headers: [(name: String, value: String)], body: [UInt8],
    remoteAddress: String?
  ) {
    self.method = method
    self.path = path
    self.query = query
    self.headers = headers
    self.body = body
    self.remoteAddress = remoteAddress
  }

  public func header(_ name: String) -> String? {
    headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
  }
}

public struct BrokerResponse: Sendable {
  public var status: Int
  public var headers: [(name: String, value: String)]
  public var body: [UInt8]
}

/// The self-hosted Instance Connect service: accepts `SendSSHPublicKey` exactly as AWS does and
/// serves signed key lists to `sixty-agent`.
public final class Broker: Sendable {
  public let config: BrokerConfig
  public let store: KeyStore
  public let metrics = BrokerMetrics()
  let signingKey: Curve25519.Signing.PrivateKey
  let audit: AuditLog?
  let clock: @Sendable () -> Date
  let limiter: RateLimiter
  let replays = ReplayCache()
  let logger: Logger

  /// - Parameters:
  ///   - clock: the broker's notion of now; tests pass a controllable one.
  public init(
    config: BrokerConfig, signingKey: Curve25519.Signing.PrivateKey, audit: AuditLog?,
    logger: Logger = Logger(label: "sixty.broker"), clock: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.config = config
    self.signingKey = signingKey
    self.audit = audit
    self.clock = clock
    self.store = KeyStore()
    self.logger = logger
    self.limiter = RateLimiter(principals: config.principals)
  }

  static let target = "AWSEC2InstanceConnectService."

  /// Routes one request.
  public func handle(_ request: BrokerRequest) -> BrokerResponse {
    let started = DispatchTime.now().uptimeNanoseconds
    defer { metrics.observe(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9) }
    switch (request.method, request.path) {
    case ("POST", "/"):
      return handleAPI(request)
    case ("GET", "/agent/v1/keys"):
      return handleAgent(request)
    case ("GET", "/healthz"):
      return BrokerResponse(status: 200, headers: [("Content-Type", "text/plain")], body: Array("ok\n".utf8))
    case ("GET", "/metrics"):
      let text = metrics.render(activeKeys: store.count(now: clock()), audit: audit)
      return BrokerResponse(
        status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")], body: Array(text.utf8))
    default:
      return BrokerResponse(
        status: 404, headers: [("Content-Type", "text/plain")], body: Array("not found\n".utf8))
    }
  }

  // MARK: - SendSSHPublicKey

  func handleAPI(_ request: BrokerRequest) -> BrokerResponse {
    let requestID = UUID().uuidString.lowercased()
    let now = clock()
    var attempt = PushAttempt(requestID: requestID, source: request.remoteAddress)
    do {
      let operation = try self.operation(request)
      let principal = try authenticate(request, now: now)
      attempt.principal = principal.accessKeyID
      let signature = request.headers.first { $0.name.lowercased() == "authorization" }?.value ?? ""
      if replays.contains(signature, now: now) {
        throw BrokerError(
          "InvalidSignatureException", status: 403,
          "This exact signed request was already accepted; a replayed request is refused. Sign a new request.",
          reason: "replay")
      }
      let push = try PushRequest.decode(request.body, serial: operation == "SendSerialConsoleSSHPublicKey")
      attempt.instance = push.instanceID
      attempt.osUser = push.osUser
      if operation == "SendSerialConsoleSSHPublicKey" {
        throw BrokerError(
          "SerialConsoleSessionUnsupportedException", status: 400,
          "This broker does not provide serial console access; use SendSSHPublicKey.",
          reason: "serial_unsupported")
      }
      guard let host = config.host(instanceID: push.instanceID) else {
        throw BrokerError.notFound(push.instanceID)
      }
      if let zone = push.availabilityZone, let hostZone = host.zone, zone != hostZone {
        throw BrokerError.invalidArgs(
          "Instance \(push.instanceID) is in availability zone \(hostZone), not \(zone).",
          reason: "wrong_zone")
      }
      guard BrokerConfig.matches(principal.hosts, host) else {
        throw BrokerError.auth(
          "Principal \(principal.accessKeyID) is not authorized to push keys to instance \(push.instanceID).",
          reason: "host_not_allowed")
      }
      guard principal.allows(user: push.osUser) else {
        throw BrokerError.auth(
          "Principal \(principal.accessKeyID) is not authorized to push keys for OS user \(push.osUser).",
          reason: "user_not_allowed")
      }
      let key = try BrokerKeys.validate(push.publicKey)
      attempt.fingerprint = key.fingerprint
      guard limiter.take(principal.accessKeyID, now: now) else { throw BrokerError.throttled() }
      let expires = now.addingTimeInterval(config.keyTTL.seconds)
      // Recorded before it takes effect: a key the audit log does not know is never served.
      try record(attempt, now: now, outcome: "accepted", reason: nil)
      // Remembered for as long as its signing time could still pass the clock check.
      replays.insert(signature, until: now.addingTimeInterval(2 * config.maxClockSkew.seconds), now: now)
      store.add(
        KeyStore.Key(
          line: key.line, fingerprint: key.fingerprint, expiresAt: expires, requestID: requestID,
          principal: principal.accessKeyID, from: host.allowedSources.map(\.description)),
        instance: host.instanceID, user: push.osUser, now: now)
      metrics.push(accepted: true, reason: nil)
      let body = "{\"RequestId\":\"\(requestID)\",\"Success\":true}"
      return BrokerResponse(
        status: 200,
        headers: [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", requestID)],
        body: Array(body.utf8))
    } catch let error as BrokerError {
      try? record(attempt, now: now, outcome: "refused", reason: "\(error.type): \(error.message)")
      metrics.push(accepted: false, reason: error.reason)
      return errorResponse(error, requestID: requestID)
    } catch {
      logger.error("push \(requestID) failed: \(error)")
      metrics.push(accepted: false, reason: "internal")
      return errorResponse(.internalError(), requestID: requestID)
    }
  }

  func operation(_ request: BrokerRequest) throws(BrokerError) -> String {
    guard let target = request.header("X-Amz-Target") else {
      throw BrokerError(
        "UnknownOperationException", status: 400, "The request has no X-Amz-Target header.",
        reason: "no_target")
    }
    guard target.hasPrefix(Broker.target) else {
      throw BrokerError(
        "UnknownOperationException", status: 400, "Unknown operation \(target).", reason: "unknown_target")
    }
    let operation = String(target.dropFirst(Broker.target.count))
    guard operation == "SendSSHPublicKey" || operation == "SendSerialConsoleSSHPublicKey" else {
      throw BrokerError(
        "UnknownOperationException", status: 400, "Unknown operation \(operation).", reason: "unknown_target")
    }
    if request.body.count > config.maxBodyBytes {
      throw BrokerError.invalidArgs(
        "The request body is larger than \(config.maxBodyBytes) bytes.", reason: "body_too_large")
    }
    return operation
  }

  struct PushAttempt {
    var requestID: String
    var source: String?
    var principal: String?
    var instance: String?
    var osUser: String?
    var fingerprint: String?
  }

  func record(_ attempt: PushAttempt, now: Date, outcome: String, reason: String?) throws {
    try audit?.append(
      AuditRecord(
        time: now, event: "push", requestID: attempt.requestID, principal: attempt.principal,
        source: attempt.source,
        instance: attempt.instance, osUser: attempt.osUser, fingerprint: attempt.fingerprint,
        outcome: outcome,
        reason: reason))
  }

  func errorResponse(_ error: BrokerError, requestID: String) -> BrokerResponse {
    var w = JSONWriter()
    w.beginObject()
    w.field("__type", error.type)
    w.field("message", error.message)
    w.endObject()
    return BrokerResponse(
      status: error.status,
      headers: [
        ("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", requestID),
        ("x-amzn-ErrorType", error.type),
      ], body: w.bytes)
  }

  // MARK: - Agent endpoint

  func handleAgent(_ request: BrokerRequest) -> BrokerResponse {
    let now = clock()
    let requestID = UUID().uuidString.lowercased()
    var query: [String: String] = [:]
    for pair in request.query.split(separator: "&") {
      let parts = pair.split(separator: "=", maxSplits: 1)
      guard parts.count == 2 else { continue }
      query[String(parts[0])] = String(parts[1]).removingPercentEncoding
    }
    func refuse(_ status: Int, _ message: String, _ outcome: String) -> BrokerResponse {
      metrics.fetch(outcome: outcome)
      _ = try? audit?.append(
        AuditRecord(
          time: now, event: "agent_fetch", requestID: requestID, principal: nil,
          source: request.remoteAddress,
          instance: query["instance_id"], osUser: query["user"], fingerprint: nil, outcome: "refused",
          reason: message))
      return BrokerResponse(
        status: status, headers: [("Content-Type", "text/plain")], body: Array((message + "\n").utf8))
    }
    guard let instance = query["instance_id"], let user = query["user"], !user.isEmpty else {
      return refuse(400, "expected instance_id and user query parameters", "bad_request")
    }
    guard let host = config.host(instanceID: instance) else {
      return refuse(404, "unknown instance", "unknown_instance")
    }
    guard let header = request.header("Authorization"), header.hasPrefix("Bearer "),
      constantTimeEqual(Array(header.dropFirst(7).utf8), Array(host.token.utf8))
    else {
      return refuse(401, "the agent token is missing or wrong", "bad_token")
    }
    let keys = store.active(instance: instance, user: user, now: now)
    let list = SignedKeyList(
      instanceID: instance, osUser: user, issuedAt: Int64(now.timeIntervalSince1970),
      keys: keys.map {
        SignedKeyList.Entry(
          key: $0.line, fingerprint: $0.fingerprint,
          expiresAt: Int64($0.expiresAt.timeIntervalSince1970.rounded(.down)),
          requestID: $0.requestID, principal: $0.principal, from: $0.from)
      })
    do {
      let body = try list.signed(with: signingKey)
      // No audit record, no keys: the trail must be complete.
      try audit?.append(
        AuditRecord(
          time: now, event: "agent_fetch", requestID: requestID, principal: nil,
          source: request.remoteAddress,
          instance: instance, osUser: user,
          fingerprint: keys.isEmpty ? nil : keys.map(\.fingerprint).joined(separator: " "),
          outcome: "served", reason: "\(keys.count) active key\(keys.count == 1 ? "" : "s")"))
      metrics.fetch(outcome: "ok")
      return BrokerResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(body))
    } catch {
      logger.error("serving the key list failed: \(error)")
      return refuse(500, "internal error", "internal")
    }
  }
}

/// Compares secrets without leaking where they differ.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
  var difference = UInt8(a.count == b.count ? 0 : 1)
  for i in 0..<max(a.count, b.count) {
    difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
  }
  return difference == 0
}
