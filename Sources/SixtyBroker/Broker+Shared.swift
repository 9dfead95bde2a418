import Foundation
import InstanceConnect
import SixtyAgentCore
import SixtyAudit

/// Requests of a broker whose state is in a database shared with other replicas
/// (`SharedBrokerStore`): the same checks as `handle(_:)`, with the replay claim, the audit record
/// and the key (or the served list and its record) in one transaction.
extension Broker {
  public func handleShared(_ request: BrokerRequest, store shared: SharedBrokerStore) async -> BrokerResponse
  {
    let started = DispatchTime.now().uptimeNanoseconds
    defer { metrics.observe(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9) }
    switch (request.method, request.path) {
    case ("POST", "/"):
      return await handleSharedAPI(request, shared)
    case ("GET", "/agent/v1/keys"):
      return await handleSharedAgent(request, shared)
    case ("GET", "/metrics"):
      let active = (try? await shared.activeKeys(now: clock())) ?? 0
      let text = metrics.render(activeKeys: active, audit: nil)
      return BrokerResponse(
        status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")], body: Array(text.utf8))
    default:
      return handle(request)
    }
  }

  func handleSharedAPI(_ request: BrokerRequest, _ shared: SharedBrokerStore) async -> BrokerResponse {
    let requestID = UUID().uuidString.lowercased()
    let now = clock()
    var attempt = PushAttempt(requestID: requestID, source: request.remoteAddress)
    do {
      let operation = try self.operation(request)
      let (principal, verified) = try authenticate(request, now: now)
      attempt.principal = principal.accessKeyID
      try checkScope(verified)
      let replayKey = ReplayKey.of(accessKeyID: principal.accessKeyID, signature: verified.signature)
      try refuseReplay(try await shared.check(replayKey, now: now))
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
      // Each replica applies the principal's rate on its own (see the README).
      guard limiter.take(principal.accessKeyID, now: now) else { throw BrokerError.throttled() }
      let forgetAt = verified.signedAt.addingTimeInterval(2 * config.maxClockSkew.seconds)
      if operation == "SignSSHPublicKey", let authority {
        var certified = auditRecord(attempt, now: now, outcome: "accepted", reason: nil)
        certified.event = "certificate"
        guard
          let serial = try await shared.certify(
            replayKey: replayKey, signedAt: verified.signedAt, forgetAt: forgetAt, record: certified)
        else {
          try refuseReplay(.replayed)
          preconditionFailure("a replay is refused")
        }
        return try certificateResponse(
          authority, key: key.line, host: host, user: push.osUser, serial: serial, requestID: requestID,
          now: now)
      }
      let expires = now.addingTimeInterval(config.keyTTL.seconds)
      let verdict = try await shared.accept(
        replayKey: replayKey, signedAt: verified.signedAt,
        forgetAt: forgetAt,
        record: auditRecord(attempt, now: now, outcome: "accepted", reason: nil),
        key: KeyStore.Key(
          line: key.line, fingerprint: key.fingerprint, expiresAt: expires, requestID: requestID,
          principal: principal.accessKeyID, from: host.allowedSources.map(\.description)),
        instance: host.instanceID, user: push.osUser)
      try refuseReplay(verdict)
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
        do {
          try await shared.append(
            auditRecord(attempt, now: now, outcome: "refused", reason: "\(error.type): \(error.message)"))
        } catch {
          logger.error("cannot record refused push \(requestID) in the audit chain: \(error)")
        }
      }
      metrics.push(accepted: false, reason: error.reason)
      return errorResponse(error, requestID: requestID)
    } catch {
      logger.error("push \(requestID) failed: \(error)")
      metrics.push(accepted: false, reason: "internal")
      return errorResponse(.internalError(), requestID: requestID)
    }
  }

  func handleSharedAgent(_ request: BrokerRequest, _ shared: SharedBrokerStore) async -> BrokerResponse {
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
    do {
      let source = request.remoteAddress
      let keys = try await shared.serve(instance: host.instanceID, user: user, now: now) { keys in
        AuditRecord(
          time: now, event: "agent_fetch", requestID: requestID, principal: nil, source: source,
          instance: host.instanceID, osUser: user,
          fingerprint: keys.isEmpty ? nil : keys.map(\.fingerprint).joined(separator: " "),
          outcome: "served", reason: "\(keys.count) active key\(keys.count == 1 ? "" : "s")")
      }
      let body = try signedList(instance: host.instanceID, user: user, keys: keys, now: now)
      metrics.fetch(outcome: "ok")
      return BrokerResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(body))
    } catch {
      logger.error("serving the key list failed: \(error)")
      metrics.fetch(outcome: "internal")
      return BrokerResponse(
        status: 500, headers: [("Content-Type", "text/plain")], body: Array("internal error\n".utf8))
    }
  }
}
