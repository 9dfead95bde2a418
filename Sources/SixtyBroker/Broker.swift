import Crypto
import Foundation
import InstanceConnect
import Logging
import SixtyAgentCore
import SixtyAudit
import SixtyCore
import Synchronization

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
  /// The database shared by replicas; keys, replays and the audit chain live there when set.
  public let shared: SharedBrokerStore?
  let clock: @Sendable () -> Date
  let limiter: RateLimiter
  let replays: any ReplayCache
  let unauthenticated: UnauthenticatedTally
  /// Compared with the token presented for an unregistered instance, so that answer takes as
  /// long as a wrong token for a registered one. Random: nothing can match it.
  let decoyToken: [UInt8]
  let logger: Logger
  /// What the operator must know at start: logged by `BrokerServer.run` as warnings.
  public let startupWarnings: [String]
  /// The certificate authority (`certificates:` in broker.yml), for `SignSSHPublicKey`.
  public let authority: CertificateAuthority?
  /// Serials of certificates when there is no audit log to number them (tests, demos).
  let unrecordedSerial = Mutex<UInt64>(UInt64(Date().timeIntervalSince1970 * 1000))

  /// - Parameters:
  ///   - replays: where accepted signatures are remembered; nil: in memory, refusing every
  ///     request signed before now (a restarted broker cannot know what it accepted before).
  ///   - unauthenticatedTally: counts requests refused before authentication (tests pass a
  ///     small one).
  ///   - clock: the broker's notion of now; tests pass a controllable one.
  public convenience init(
    config: BrokerConfig, signingKey: Curve25519.Signing.PrivateKey, audit: AuditLog?,
    replays: (any ReplayCache)? = nil, shared: SharedBrokerStore? = nil,
    authority: CertificateAuthority? = nil,
    logger: Logger = Logger(label: "sixty.broker"), clock: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.init(
      config: config, signingKey: signingKey, audit: audit, replays: replays, shared: shared,
      unauthenticatedTally: UnauthenticatedTally(), authority: authority, logger: logger, clock: clock)
  }

  init(
    config: BrokerConfig, signingKey: Curve25519.Signing.PrivateKey, audit: AuditLog?,
    replays: (any ReplayCache)?, shared: SharedBrokerStore? = nil, unauthenticatedTally: UnauthenticatedTally,
    authority: CertificateAuthority? = nil,
    logger: Logger = Logger(label: "sixty.broker"), clock: @escaping @Sendable () -> Date
  ) {
    self.config = config
    self.authority = authority
    self.signingKey = signingKey
    self.audit = audit
    self.shared = shared
    self.clock = clock
    self.store = KeyStore()
    self.logger = logger
    self.limiter = RateLimiter(principals: config.principals)
    self.unauthenticated = unauthenticatedTally
    self.decoyToken = Array(
      SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString().utf8)
    // X-Amz-Date counts whole seconds: the cut is the next whole second.
    let started = Date(timeIntervalSince1970: clock().timeIntervalSince1970.rounded(.up))
    var warnings: [String] = []
    if config.regionIsDefault {
      warnings.append(
        "region not set in broker.yml; accepting only requests signed for \(config.region) (set 'region' to change it)"
      )
    }
    if let replays {
      self.replays = replays
    } else {
      self.replays = MemoryReplayCache(
        retention: 2 * config.maxClockSkew.seconds, refusingSignedBefore: started)
    }
    if !self.replays.isPersistent && shared == nil {
      warnings.append(
        "no replay_cache or audit_log in broker.yml: accepted signatures are kept in memory only, so every request signed before this start is refused; set 'replay_cache' to keep them across restarts"
      )
    }
    startupWarnings = warnings
  }

  static let sendSSHPublicKey = "AWSEC2InstanceConnectService.SendSSHPublicKey"
  static let sendSerialConsoleSSHPublicKey = "AWSEC2InstanceConnectService.SendSerialConsoleSSHPublicKey"
  static let signSSHPublicKey = "AWSEC2InstanceConnectService.SignSSHPublicKey"

  /// Whether `value` is `application/x-amz-json-1.1` (ASCII case-insensitive, parameters such as
  /// `; charset=utf-8` allowed), compared on bytes.
  static func isAWSJSON11(_ value: String) -> Bool {
    let bytes = Array(value.utf8)
    let end = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
    var media = bytes[..<end]
    while let b = media.first, b == 0x20 || b == 0x09 { media = media.dropFirst() }
    while let b = media.last, b == 0x20 || b == 0x09 { media = media.dropLast() }
    let lowered = media.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
    return lowered.elementsEqual("application/x-amz-json-1.1".utf8)
  }

  /// Routes one request.
  public func handle(_ request: BrokerRequest) -> BrokerResponse {
    let started = DispatchTime.now().uptimeNanoseconds
    defer { metrics.observe(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9) }
    switch (request.method, request.path) {
    case ("POST", "/"):
      return handleAPI(request)
    case ("GET", "/agent/v1/keys"):
      return handleAgent(request)
    case ("GET", EndpointCapabilities.path):
      return BrokerResponse(
        status: 200, headers: [("Content-Type", "application/json")], body: capabilities.json)
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

  /// What `GET /sixty/v1/capabilities` answers: the key types this broker takes, ECDSA P-256
  /// preferred (the cheapest to make and to check, and ssh signs with it at once).
  public var capabilities: EndpointCapabilities {
    EndpointCapabilities(
      service: "sixty-broker", keyTypes: ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"],
      preferredKeyType: "ecdsa-sha2-nistp256",
      operations: ["SendSSHPublicKey", "SendSerialConsoleSSHPublicKey"]
        + (authority == nil ? [] : ["SignSSHPublicKey"]),
      preferredLogin: authority != nil && config.certificates?.prefer == true ? "certificate" : "key")
  }

  // MARK: - SendSSHPublicKey

  func handleAPI(_ request: BrokerRequest) -> BrokerResponse {
    let requestID = UUID().uuidString.lowercased()
    let now = clock()
    var attempt = PushAttempt(requestID: requestID, source: request.remoteAddress)
    do {
      let operation = try self.operation(request)
      let (principal, verified) = try authenticate(request, now: now)
      // From here on the request is signed with the principal's secret, so each refusal gets its
      // own audit record, except a replay, which anyone who captured the request can send.
      attempt.principal = principal.accessKeyID
      try checkScope(verified)
      // Keyed on the configured access key id (the header's spelling of it is not signed) and
      // the verified signature, never on the Authorization header's text.
      let replayKey = ReplayKey.of(accessKeyID: principal.accessKeyID, signature: verified.signature)
      // An early look, so a replay is refused before it costs the principal a rate token; the
      // claim below decides.
      try refuseReplay(try replays.check(replayKey, signedAt: verified.signedAt, now: now))
      let push = try PushRequest.decode(request.body, serial: operation == "SendSerialConsoleSSHPublicKey")
      attempt.instance = push.instanceID
      attempt.osUser = push.osUser.isEmpty ? nil : push.osUser
      if operation == "SendSerialConsoleSSHPublicKey" {
        throw BrokerError(
          "SerialConsoleSessionUnsupportedException", status: 400,
          "This broker does not provide serial console access; use SendSSHPublicKey.",
          reason: "serial_unsupported")
      }
      let host = try authorize(principal, push)
      let key = try BrokerKeys.validate(push.publicKey)
      attempt.fingerprint = key.fingerprint
      guard limiter.take(principal.accessKeyID, now: now) else { throw BrokerError.throttled() }
      // On disk before the key takes effect: a restarted broker still refuses this request.
      try refuseReplay(try replays.claim(replayKey, signedAt: verified.signedAt, now: now))
      if operation == "SignSSHPublicKey", let authority {
        // Recorded before it is signed: the record's sequence number is the serial.
        var certified = auditRecord(attempt, now: now, outcome: "accepted", reason: nil)
        certified.event = "certificate"
        let serial: Int
        if let audit {
          serial = try audit.appendNumbered(certified).sequence
        } else {
          serial = Int(
            unrecordedSerial.withLock {
              $0 += 1; return $0
            })
        }
        return try certificateResponse(
          authority, key: key.line, host: host, user: push.osUser, serial: serial, requestID: requestID,
          now: now)
      }
      let expires = now.addingTimeInterval(config.keyTTL.seconds)
      // Recorded before it takes effect: a key the audit log does not know is never served.
      try record(attempt, now: now, outcome: "accepted", reason: nil)
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
      if attempt.principal == nil || Broker.replayReasons.contains(error.reason) {
        noteUnauthenticated(source: request.remoteAddress, reason: error.reason, now: now)
      } else {
        try? record(attempt, now: now, outcome: "refused", reason: "\(error.type): \(error.message)")
      }
      metrics.push(accepted: false, reason: error.reason)
      return errorResponse(error, requestID: requestID)
    } catch {
      logger.error("push \(requestID) failed: \(error)")
      metrics.push(accepted: false, reason: "internal")
      return errorResponse(.internalError(), requestID: requestID)
    }
  }

  static let replayReasons: Set<String> = ["replay", "signed_before_floor"]

  /// Signs the certificate and answers with it (`Certificate`, `SerialNumber`, validity).
  func certificateResponse(
    _ authority: CertificateAuthority, key: String, host: BrokerConfig.RegisteredHost, user: String,
    serial: Int, requestID: String, now: Date
  ) throws -> BrokerResponse {
    let certificate = try authority.certificate(
      for: key, user: user, instance: host.instanceID, sources: host.allowedSources, serial: UInt64(serial),
      keyID: requestID, now: now, ttl: config.keyTTL.seconds)
    metrics.push(accepted: true, reason: nil)
    var w = JSONWriter()
    w.beginObject()
    w.field("RequestId", requestID)
    w.field("Success", true)
    w.field("Certificate", certificate.line)
    w.field("SerialNumber", serial)
    w.field("ValidAfter", Int(certificate.request.validAfter))
    w.field("ValidBefore", Int(certificate.request.validBefore))
    w.endObject()
    return BrokerResponse(
      status: 200,
      headers: [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", requestID)],
      body: w.bytes)
  }

  func refuseReplay(_ verdict: ReplayVerdict) throws(BrokerError) {
    switch verdict {
    case .fresh: return
    case .replayed:
      throw BrokerError(
        "InvalidSignatureException", status: 403,
        "This exact signed request was already accepted; a replayed request is refused. Sign a new request.",
        reason: "replay")
    case .signedBeforeFloor(let floor):
      throw BrokerError(
        "InvalidSignatureException", status: 403,
        "The request was signed before \(SigV4.amzDate(floor)), earlier than this broker can check for replays; sign a new request.",
        reason: "signed_before_floor")
    }
  }

  /// Checks the principal's policy before anything about the instance: an instance outside it,
  /// registered or not, gets the same answer, so a principal learns nothing about instances it
  /// may not reach (whether they exist, where they are). Only then are a missing instance and a
  /// wrong zone reported.
  func authorize(_ principal: BrokerConfig.Principal, _ push: PushRequest) throws(BrokerError)
    -> BrokerConfig.RegisteredHost
  {
    let host = config.host(instanceID: push.instanceID)
    let reachable =
      host.map { BrokerConfig.matches(principal.hosts, $0) }
      ?? BrokerConfig.coversAnyHost(principal.hosts, instanceID: push.instanceID)
    guard reachable else {
      throw BrokerError.auth(
        "Principal \(principal.accessKeyID) is not authorized to push keys to instance \(push.instanceID).",
        reason: "host_not_allowed")
    }
    guard principal.allows(user: push.osUser) else {
      throw BrokerError.auth(
        "Principal \(principal.accessKeyID) is not authorized to push keys for OS user \(push.osUser).",
        reason: "user_not_allowed")
    }
    guard let host else { throw BrokerError.notFound(push.instanceID) }
    if let zone = push.availabilityZone, let hostZone = host.zone, zone != hostZone {
      throw BrokerError.invalidArgs(
        "Instance \(push.instanceID) is in availability zone \(hostZone), not \(zone).", reason: "wrong_zone")
    }
    return host
  }

  func operation(_ request: BrokerRequest) throws(BrokerError) -> String {
    guard let target = request.header("X-Amz-Target") else {
      throw BrokerError(
        "UnknownOperationException", status: 400, "The request has no X-Amz-Target header.",
        reason: "no_target")
    }
    // Compared as bytes: `String` equality is canonical equivalence, under which a Kelvin sign
    // (U+212A) equals "K"; what the broker acts on must be what a proxy or a log saw.
    let operation: String
    if target.utf8.elementsEqual(Broker.sendSSHPublicKey.utf8) {
      operation = "SendSSHPublicKey"
    } else if target.utf8.elementsEqual(Broker.sendSerialConsoleSSHPublicKey.utf8) {
      operation = "SendSerialConsoleSSHPublicKey"
    } else if target.utf8.elementsEqual(Broker.signSSHPublicKey.utf8) {
      guard authority != nil else {
        throw BrokerError(
          "UnknownOperationException", status: 400,
          "This broker does not sign certificates (no 'certificates' in its broker.yml); use SendSSHPublicKey.",
          reason: "no_certificate_authority")
      }
      operation = "SignSSHPublicKey"
    } else {
      throw BrokerError(
        "UnknownOperationException", status: 400,
        "Unknown operation \(HostileText.excerpt(target)); expected \(Broker.sendSSHPublicKey).",
        reason: "unknown_target")
    }
    // What botocore and every AWS SDK send for this service (AWS JSON 1.1); AWS answers any
    // other type with a 404 UnknownOperationException.
    let contentType = request.header("Content-Type") ?? ""
    guard Broker.isAWSJSON11(contentType) else {
      throw BrokerError(
        "UnknownOperationException", status: 404,
        contentType.isEmpty
          ? "The request has no Content-Type; expected application/x-amz-json-1.1."
          : "The Content-Type \(HostileText.excerpt(contentType)) is not supported; expected application/x-amz-json-1.1.",
        reason: "bad_content_type")
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
    try audit?.append(auditRecord(attempt, now: now, outcome: outcome, reason: reason))
  }

  func auditRecord(_ attempt: PushAttempt, now: Date, outcome: String, reason: String?) -> AuditRecord {
    AuditRecord(
      time: now, event: "push", requestID: attempt.requestID, principal: attempt.principal,
      source: attempt.source,
      instance: attempt.instance, osUser: attempt.osUser, fingerprint: attempt.fingerprint,
      outcome: outcome,
      reason: reason)
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

  static let agentRefusal = "the agent token is missing or wrong, or the instance is not registered"

  enum AgentAuthentication {
    case refused(BrokerResponse)
    case accepted(BrokerConfig.RegisteredHost, user: String)
  }

  /// The agent's instance and user, once its token matched.
  func authenticateAgent(_ request: BrokerRequest, now: Date) -> AgentAuthentication {
    var query: [String: String] = [:]
    for pair in request.query.split(separator: "&") {
      let parts = pair.split(separator: "=", maxSplits: 1)
      guard parts.count == 2 else { continue }
      query[String(parts[0])] = String(parts[1]).removingPercentEncoding
    }
    // Before a valid token, nothing the request says is written anywhere: it is counted.
    // `/metrics` is public: its outcome must not tell an unknown instance from a wrong token
    // either; the audit summary (`reason`) may.
    func refuse(_ status: Int, _ message: String, _ outcome: String, reason: String? = nil)
      -> AgentAuthentication
    {
      metrics.fetch(outcome: outcome)
      noteUnauthenticated(source: request.remoteAddress, reason: reason ?? outcome, now: now)
      return .refused(
        BrokerResponse(
          status: status, headers: [("Content-Type", "text/plain")], body: Array((message + "\n").utf8)))
    }
    guard let instance = query["instance_id"], let user = query["user"], !user.isEmpty else {
      return refuse(400, "expected instance_id and user query parameters", "bad_request")
    }
    // An unknown instance and a wrong token get the same answer, after the same comparison (with
    // a random decoy for an unknown instance): the endpoint does not say which ids are registered.
    let host = config.host(instanceID: instance)
    var presented: [UInt8] = []
    if let header = request.header("Authorization"), header.utf8.starts(with: "Bearer ".utf8) {
      presented = Array(header.utf8.dropFirst(7))
    }
    let matches = constantTimeEqual(presented, host.map { Array($0.token.utf8) } ?? decoyToken)
    guard let host, matches, !presented.isEmpty else {
      return refuse(
        401, Broker.agentRefusal, "bad_token", reason: host == nil ? "unknown_instance" : "bad_token")
    }
    return .accepted(host, user: user)
  }

  /// The signed list of `keys` for `instance` and `user`.
  func signedList(instance: String, user: String, keys: [KeyStore.Key], now: Date) throws -> Data {
    let list = SignedKeyList(
      instanceID: instance, osUser: user, issuedAt: Int64(now.timeIntervalSince1970),
      keys: keys.map {
        SignedKeyList.Entry(
          key: $0.line, fingerprint: $0.fingerprint,
          expiresAt: Int64($0.expiresAt.timeIntervalSince1970.rounded(.down)),
          requestID: $0.requestID, principal: $0.principal, from: $0.from)
      })
    return try list.signed(with: signingKey)
  }

  func handleAgent(_ request: BrokerRequest) -> BrokerResponse {
    let now = clock()
    let requestID = UUID().uuidString.lowercased()
    let host: BrokerConfig.RegisteredHost
    let user: String
    switch authenticateAgent(request, now: now) {
    case .refused(let response): return response
    case .accepted(let found, let osUser):
      host = found
      user = osUser
    }
    let keys = store.active(instance: host.instanceID, user: user, now: now)
    do {
      let body = try signedList(instance: host.instanceID, user: user, keys: keys, now: now)
      // No audit record, no keys: the trail must be complete.
      try audit?.append(
        AuditRecord(
          time: now, event: "agent_fetch", requestID: requestID, principal: nil,
          source: request.remoteAddress,
          instance: host.instanceID, osUser: user,
          fingerprint: keys.isEmpty ? nil : keys.map(\.fingerprint).joined(separator: " "),
          outcome: "served", reason: "\(keys.count) active key\(keys.count == 1 ? "" : "s")"))
      metrics.fetch(outcome: "ok")
      return BrokerResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(body))
    } catch {
      logger.error("serving the key list failed: \(error)")
      metrics.fetch(outcome: "internal")
      return BrokerResponse(
        status: 500, headers: [("Content-Type", "text/plain")], body: Array("internal error\n".utf8))
    }
  }

  // MARK: - Unauthenticated requests

  /// Counts a request refused before it proved who sent it; writes the summaries of a period
  /// that has ended.
  func noteUnauthenticated(source: String?, reason: String, now: Date) {
    writeSummaries(unauthenticated.note(source: source, reason: reason, now: now), now: now)
  }

  /// Writes the unauthenticated-request summaries that are due (all of them with `force`, at
  /// shutdown). The server calls it every few seconds, so a summary does not wait for the next
  /// request.
  public func flushUnauthenticated(force: Bool = false) {
    let now = clock()
    writeSummaries(unauthenticated.flush(now: now, force: force), now: now)
  }

  func writeSummaries(_ summaries: [UnauthenticatedTally.Summary], now: Date) {
    for summary in summaries {
      let entry = summary.entry
      let requests = entry.count == 1 ? "1 request" : "\(entry.count) requests"
      let reason =
        "\(requests) refused before authentication"
        + (summary.source == nil ? " from sources beyond the first \(unauthenticated.capacity)" : "")
        + " between \(SigV4.amzDate(entry.firstAt)) and \(SigV4.amzDate(entry.lastAt)); first: \(entry.first), last: \(entry.last)"
      let record = AuditRecord(
        time: now, event: "unauthenticated", requestID: UUID().uuidString.lowercased(), principal: nil,
        source: summary.source ?? "other-sources", instance: nil, osUser: nil, fingerprint: nil,
        outcome: "refused", reason: reason)
      if let shared {
        let logger = self.logger
        Task {
          do {
            try await shared.append(record)
          } catch {
            logger.error("cannot write the unauthenticated-request summary to the audit chain: \(error)")
          }
        }
        continue
      }
      do {
        try audit?.append(record)
      } catch {
        logger.error("cannot write the unauthenticated-request summary to the audit log: \(error)")
      }
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
