import Crypto
import Foundation
import InstanceConnect
import NIOCore
import SixtyAudit
import SixtyKeys
import Testing

@testable import SixtyAgentCore
@testable import SixtyBroker

/// A clock the test moves by hand.
final class TestClock: @unchecked Sendable {
  private let lock = NSLock()
  private var current: Date
  init(_ start: Date) { current = start }
  var now: Date { lock.withLock { current } }
  func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
}

@Suite final class BrokerTests {
  static let keyID = "AKIDBROKERTEST01"
  static let secret = "broker-test-secret-0123456789"
  static let web = "i-0000000000000001"
  static let db = "i-0000000000000002"
  static let token = "agent-token-web-1-0123456789"

  let directory: String
  let clock = TestClock(Date(timeIntervalSince1970: 1_795_000_000))
  let signingKey = Curve25519.Signing.PrivateKey()
  let key = try! SSHKeyPair.generate(.ed25519, comment: "test")

  init() throws {
    directory =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-broker-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: directory) }

  static let wildKeyID = "AKIDBROKERWILD01"
  static let wildSecret = "broker-wild-secret-0123456789"

  /// A broker whose replay cache is a file in the test's directory (`replays` nil), or the one
  /// given; `memoryFallback` builds it as `sixty broker serve` does without a replay cache path.
  func broker(
    burst: Int = 100, extra: String = "", replays: (any ReplayCache)? = nil, memoryFallback: Bool = false,
    tally: UnauthenticatedTally = UnauthenticatedTally(), auditFile: String = "audit.jsonl",
    authority: CertificateAuthority? = nil
  ) throws -> Broker {
    let yaml = """
      key_ttl: 60s
      principals:
        deploy:
          access_key_id: \(Self.keyID)
          secret: \(Self.secret)
          hosts: [role=web]
          users: [ops, deploy]
          rate: {per_second: 1, burst: \(burst)}
        wild:
          access_key_id: \(Self.wildKeyID)
          secret: \(Self.wildSecret)
          hosts: ["i-*"]
          users: ["*"]
      groups:
        lab: {allowed_sources: [127.0.0.0/8, "::1"]}
      hosts:
        \(Self.web): {name: web-1, zone: us-east-1a, tags: {role: web}, group: lab, token: \(Self.token)}
        \(Self.db): {name: db-1, zone: us-west-2b, tags: {role: db}, token: agent-token-db-1-0123456789}
      \(extra)
      """
    let path = directory + "/broker.yml"
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o600)  // secrets inline
    let (config, diagnostics) = BrokerConfig.load(path: path)
    let loaded = try #require(config, "\(diagnostics.map(\.description))")
    // One writer per audit log (it is locked): a second broker in the same test, standing for a
    // restarted process while the first is still referenced, names its own.
    let audit = try AuditLog(path: directory + "/" + auditFile)
    let clock = self.clock
    let cache: (any ReplayCache)? =
      memoryFallback
      ? nil
      : try replays
        ?? FileReplayCache(
          path: directory + "/replays", retention: 2 * loaded.maxClockSkew.seconds, now: clock.now)
    return Broker(
      config: loaded, signingKey: signingKey, audit: audit, replays: cache, unauthenticatedTally: tally,
      authority: authority, clock: { clock.now })
  }

  func pushBody(
    instance: String = web, user: String = "ops", key publicKey: String? = nil, zone: String? = nil
  ) -> [UInt8] {
    var object: [String: String] = [
      "InstanceId": instance, "InstanceOSUser": user, "SSHPublicKey": publicKey ?? key.authorizedKey,
    ]
    if let zone { object["AvailabilityZone"] = zone }
    return Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
  }

  func request(
    _ body: [UInt8], operation: String = "SendSSHPublicKey", keyID: String = keyID, secret: String = secret,
    signedAt: Date? = nil, service: String = "ec2-instance-connect", region: String = "us-east-1",
    contentType: String? = "application/x-amz-json-1.1", sign: Bool = true
  ) -> BrokerRequest {
    var signed = SigV4Request(
      method: "POST", path: "/",
      headers: [("Host", "127.0.0.1:8600")] + (contentType.map { [("Content-Type", $0)] } ?? []) + [
        ("X-Amz-Target", "AWSEC2InstanceConnectService.\(operation)")
      ], body: body)
    if sign {
      SigV4.sign(
        &signed, credentials: AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, source: "test"),
        region: region, service: service, date: signedAt ?? clock.now)
    }
    return BrokerRequest(
      method: "POST", path: "/", headers: signed.headers, body: body, remoteAddress: "127.0.0.1")
  }

  func error(_ response: BrokerResponse) -> (type: String, message: String)? {
    guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
    else {
      return nil
    }
    return (object["__type"] ?? "", object["message"] ?? "")
  }

  func fetch(_ broker: Broker, instance: String = web, user: String = "ops", token: String = token)
    -> BrokerResponse
  {
    broker.handle(
      BrokerRequest(
        method: "GET", path: "/agent/v1/keys", query: "instance_id=\(instance)&user=\(user)",
        headers: [("Authorization", "Bearer \(token)")], body: [], remoteAddress: "127.0.0.1"))
  }

  @Test func anAcceptedPushIsServedSignedToTheAgentUntilTheTTL() throws {
    let broker = try broker()
    let response = broker.handle(request(pushBody(zone: "us-east-1a")))
    #expect(response.status == 200)
    let object = try #require(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    #expect(object["Success"] as? Bool == true)
    let requestID = try #require(object["RequestId"] as? String)
    #expect(response.headers.contains { $0.name == "x-amzn-RequestId" && $0.value == requestID })

    let served = fetch(broker)
    #expect(served.status == 200)
    let list = try SignedKeyList.verify(
      Data(served.body), publicKey: signingKey.publicKey, instanceID: Self.web, osUser: "ops", now: clock.now)
    #expect(list.keys.count == 1)
    #expect(list.keys.first?.requestID == requestID)
    #expect(list.keys.first?.principal == Self.keyID)
    #expect(list.keys.first?.expiresAt == Int64(clock.now.timeIntervalSince1970) + 60)
    #expect(
      list.authorizedKeysLines(now: clock.now) == [
        "expiry-time=\"\(SignedKeyList.expiryTime(Int64(clock.now.timeIntervalSince1970) + 60))\",from=\"127.0.0.0/8,::1\" \(key.authorizedKey.split(separator: " ").prefix(2).joined(separator: " "))"
      ])
    // Another user's list is empty; a different host's token is refused.
    let other = fetch(broker, user: "deploy")
    #expect(
      try SignedKeyList.verify(
        Data(other.body), publicKey: signingKey.publicKey, instanceID: Self.web, osUser: "deploy",
        now: clock.now
      ).keys.isEmpty)
    #expect(fetch(broker, token: "agent-token-db-1-0123456789").status == 401)
    #expect(fetch(broker, instance: "i-00000000000000ff").status == 401)

    clock.advance(59)
    #expect(broker.store.count(now: clock.now) == 1)
    clock.advance(1)
    #expect(broker.store.count(now: clock.now) == 0)
    let later = try SignedKeyList.verify(
      Data(fetch(broker).body), publicKey: signingKey.publicKey, instanceID: Self.web, osUser: "ops",
      now: clock.now)
    #expect(later.keys.isEmpty)
    #expect(broker.store.purge(now: clock.now) == 0)
  }

  /// An ECDSA P-256 key is accepted, stored and served to the agent, which passes it to sshd.
  @Test func anECDSAKeyIsServedLikeTheOthers() throws {
    let broker = try broker()
    let ecdsa = try SSHKeyPair.generate(.ecdsaP256, comment: "ecdsa")
    #expect(broker.handle(request(pushBody(key: ecdsa.publicKeyLine))).status == 200)
    let list = try SignedKeyList.verify(
      Data(fetch(broker).body), publicKey: signingKey.publicKey, instanceID: Self.web, osUser: "ops",
      now: clock.now)
    let lines = list.authorizedKeysLines(now: clock.now, fingerprint: ecdsa.fingerprint)
    #expect(lines.map { $0.split(separator: " ").suffix(2).joined(separator: " ") } == [ecdsa.authorizedKey])
  }

  @Test func severalKeysMayBeActiveForOneHostAndUser() throws {
    let broker = try broker()
    let second = try SSHKeyPair.generate(.ed25519, comment: "second")
    #expect(broker.handle(request(pushBody())).status == 200)
    clock.advance(30)
    #expect(broker.handle(request(pushBody(key: second.authorizedKey))).status == 200)
    #expect(broker.store.active(instance: Self.web, user: "ops", now: clock.now).count == 2)
    clock.advance(31)
    #expect(
      broker.store.active(instance: Self.web, user: "ops", now: clock.now).map(\.fingerprint) == [
        second.fingerprint
      ])
  }

  @Test func signaturesAreChecked() throws {
    let broker = try broker()
    let body = pushBody()
    let cases: [(BrokerRequest, Int, String, String)] = [
      (request(body, secret: "wrong"), 403, "InvalidSignatureException", "does not match"),
      (request(body, keyID: "AKIDUNKNOWN000001"), 403, "UnrecognizedClientException", "security token"),
      (request(body, sign: false), 403, "MissingAuthenticationTokenException", "not signed"),
      (
        request(body, signedAt: clock.now.addingTimeInterval(-301)), 403, "InvalidSignatureException",
        "Signature expired"
      ),
      (
        request(body, signedAt: clock.now.addingTimeInterval(301)), 403, "InvalidSignatureException",
        "Signature expired"
      ),
      (request(body, service: "ec2"), 403, "InvalidSignatureException", "scoped to correct service"),
    ]
    for (request, status, type, fragment) in cases {
      let response = broker.handle(request)
      #expect(response.status == status)
      let decoded = try #require(error(response))
      #expect(decoded.type == type)
      #expect(decoded.message.contains(fragment), "\(decoded.message)")
      #expect(!decoded.message.contains(Self.secret))
    }
    // A request accepted once is refused when sent again, even inside the clock window.
    let once = request(body, signedAt: clock.now.addingTimeInterval(-5))
    #expect(broker.handle(once).status == 200)
    let replayed = broker.handle(once)
    #expect(replayed.status == 403)
    #expect(error(replayed)?.message.contains("a replayed request is refused") == true)
    // Within five minutes either way is fine.
    #expect(broker.handle(request(body, signedAt: clock.now.addingTimeInterval(-299))).status == 200)
    // A body changed after signing is caught.
    var tampered = request(body)
    tampered.body = pushBody(user: "deploy")
    #expect(error(broker.handle(tampered))?.type == "InvalidSignatureException")
    // A malformed Authorization header.
    var malformed = request(body)
    malformed.headers = malformed.headers.map {
      $0.name == "Authorization" ? ($0.name, "AWS4-HMAC-SHA256 Credential=x") : $0
    }
    #expect(error(broker.handle(malformed))?.type == "IncompleteSignatureException")
  }

  @Test(arguments: [
    ("options prefix", "command=\"/bin/sh\" KEY", "options prefix"),
    ("newline inside", "KEY\nKEY", "newline"),
    ("NUL", "KEY\u{0}", "control character"),
    ("two keys on one line", "KEY KEY", "second key"),
    (
      "bad base64",
      "ssh-ed25519 AAAA!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "base64"
    ),
    (
      "unsupported type",
      "ssh-dss AAAAB3NzaC1kc3MAAACBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not supported"
    ),
    ("comment with a control character", "KEY bad\u{7}comment", "control character"),
  ])
  func badKeysAreInvalidArgs(name: String, template: String, fragment: String) throws {
    let broker = try broker()
    let bare = key.authorizedKey.split(separator: " ").prefix(2).joined(separator: " ")
    let text = template.replacingOccurrences(of: "KEY", with: bare)
    let response = broker.handle(request(pushBody(key: text)))
    #expect(response.status == 400, "\(name)")
    let decoded = try #require(error(response))
    #expect(decoded.type == "InvalidArgsException", "\(name)")
    #expect(decoded.message.contains(fragment), "\(name): \(decoded.message)")
    #expect(broker.store.count(now: clock.now) == 0)
  }

  @Test func aTrailingNewlineIsAcceptedAsAWSDoes() throws {
    let broker = try broker()
    #expect(broker.handle(request(pushBody(key: key.authorizedKey + "\n"))).status == 200)
  }

  @Test func requestsAreValidatedLikeTheServiceModel() throws {
    let broker = try broker()
    let cases: [([UInt8], String, String)] = [
      (pushBody(instance: "i-XYZ"), "InvalidArgsException", "InstanceId"),
      (pushBody(user: "-oProxyCommand"), "InvalidArgsException", "InstanceOSUser"),
      (pushBody(zone: "moon"), "InvalidArgsException", "AvailabilityZone"),
      (pushBody(zone: "us-east-1b"), "InvalidArgsException", "us-east-1a"),
      (pushBody(key: "ssh-ed25519 AAAA"), "InvalidArgsException", "80 to 4096"),
      (Array("not json".utf8), "InvalidArgsException", "JSON"),
      (
        Array("{\"InstanceId\":\"i-0000000000000001\",\"Extra\":1}".utf8), "InvalidArgsException",
        "Unknown parameter"
      ),
      (pushBody(instance: "i-00000000000000ff"), "AuthException", "i-00000000000000ff"),
    ]
    for (body, type, fragment) in cases {
      let decoded = try #require(error(broker.handle(request(body))))
      #expect(decoded.type == type, "\(String(decoding: body, as: UTF8.self))")
      #expect(decoded.message.contains(fragment), "\(decoded.message)")
    }
    let serial = broker.handle(
      request(
        Array("{\"InstanceId\":\"\(Self.web)\",\"SSHPublicKey\":\"\(key.authorizedKey)\"}".utf8),
        operation: "SendSerialConsoleSSHPublicKey"))
    #expect(error(serial)?.type == "SerialConsoleSessionUnsupportedException")
    let unknown = broker.handle(request(pushBody(), operation: "DeleteEverything"))
    #expect(error(unknown)?.type == "UnknownOperationException")
  }

  @Test func principalsAreHeldToTheirHostsAndUsers() throws {
    let broker = try broker()
    let host = try #require(error(broker.handle(request(pushBody(instance: Self.db)))))
    #expect(host.type == "AuthException")
    #expect(host.message.contains("instance \(Self.db)"))
    let user = try #require(error(broker.handle(request(pushBody(user: "root")))))
    #expect(user.type == "AuthException")
    #expect(user.message.contains("OS user root"))
  }

  @Test func pushesAreRateLimitedPerPrincipal() throws {
    let broker = try broker(burst: 2)
    // Distinct requests (the key's comment differs), so none is a replay of another.
    func distinct(_ n: Int) -> [UInt8] {
      pushBody(key: key.authorizedKey.split(separator: " ").prefix(2).joined(separator: " ") + " push-\(n)")
    }
    #expect(broker.handle(request(distinct(1))).status == 200)
    #expect(broker.handle(request(distinct(2))).status == 200)
    let third = broker.handle(request(distinct(3)))
    #expect(third.status == 400)
    #expect(error(third)?.type == "ThrottlingException")
    clock.advance(1)  // one token per second
    #expect(broker.handle(request(distinct(4))).status == 200)
  }

  @Test func everyPushAndFetchIsAuditedInAChain() throws {
    let broker = try broker()
    _ = broker.handle(request(pushBody()))
    _ = broker.handle(request(pushBody(), secret: "wrong"))
    _ = broker.handle(request(pushBody(user: "root")))
    _ = fetch(broker)
    _ = fetch(broker, token: "nope-nope-nope-nope")
    // Requests refused before authentication are counted, and summarised once a minute.
    clock.advance(60)
    broker.flushUnauthenticated()
    let summary = try AuditVerifier.verify(path: directory + "/audit.jsonl")
    #expect(summary.records == 4)
    let shown = try AuditVerifier.show(path: directory + "/audit.jsonl")
    #expect(shown[0].contains("push accepted") && shown[0].contains(key.fingerprint))
    #expect(shown[1].contains("push refused") && shown[1].contains("AuthException"))
    #expect(shown[2].contains("agent_fetch served") && shown[2].contains(key.fingerprint))
    #expect(shown[3].contains("unauthenticated refused") && shown[3].contains("2 requests"), "\(shown[3])")
    #expect(shown[3].contains("first: bad_signature, last: bad_token"), "\(shown[3])")
    let raw = try String(contentsOfFile: directory + "/audit.jsonl", encoding: .utf8)
    #expect(!raw.contains(Self.secret) && !raw.contains(Self.token))
  }

  @Test func metricsCountPushesRefusalsAndKeys() throws {
    let broker = try broker()
    _ = broker.handle(request(pushBody()))
    _ = broker.handle(request(pushBody(user: "root")))
    let text = String(
      decoding: broker.handle(
        BrokerRequest(method: "GET", path: "/metrics", headers: [], body: [], remoteAddress: nil)
      ).body,
      as: UTF8.self)
    #expect(text.contains("sixty_broker_pushes_total{outcome=\"accepted\"} 1"))
    #expect(text.contains("sixty_broker_refusals_total{reason=\"user_not_allowed\"} 1"))
    #expect(text.contains("sixty_broker_active_keys 1"))
    #expect(text.contains("sixty_broker_request_seconds_count 2"))
    let health = broker.handle(
      BrokerRequest(method: "GET", path: "/healthz", headers: [], body: [], remoteAddress: nil))
    #expect(health.status == 200)
  }
}

@Suite struct BrokerConfigTimeoutTests {
  func load(
    _ extra: String, mode: mode_t = 0o600, secret: String = "secret: config-secret-0123456789abcdef",
    environment: [String: String] = [:]
  ) throws -> (BrokerConfig?, [String]) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sixty-cfg-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("broker.yml").path
    try
      "key_ttl: 60s\n\(extra)\nprincipals:\n  p: {access_key_id: AKIDSIXTYCONFIGTEST1, \(secret), hosts: [\"*\"], users: [\"*\"]}\n"
      .write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, mode)
    let (config, diagnostics) = BrokerConfig.load(path: path, environment: environment)
    return (config, diagnostics.map { $0.description.replacingOccurrences(of: path, with: "broker.yml") })
  }

  /// As ssh refuses a private key others can read, the broker refuses a configuration holding
  /// secrets inline that others can read; secrets from the environment leave the mode free.
  @Test func inlineSecretsNeedAFileOnlyItsOwnerCanRead() throws {
    for mode: mode_t in [0o644, 0o640, 0o604] {
      let (config, diagnostics) = try load("", mode: mode)
      #expect(config == nil, "mode \(String(mode, radix: 8))")
      #expect(
        diagnostics.contains {
          $0.contains(
            "the broker configuration broker.yml holds secrets inline (the secret of principal 'p') and is readable by others (mode 0\(String(mode, radix: 8))); chmod 600 it or use secret_env/token_env."
          )
        }, "\(diagnostics)")
    }
    for mode: mode_t in [0o600, 0o400, 0o620] {
      let (config, diagnostics) = try load("", mode: mode)
      #expect(config != nil, "mode \(String(mode, radix: 8)): \(diagnostics)")
    }
    let (fromEnvironment, diagnostics) = try load(
      "", mode: 0o644, secret: "secret_env: SIXTY_TEST_SECRET",
      environment: ["SIXTY_TEST_SECRET": "config-secret-0123456789abcdef"])
    #expect(fromEnvironment?.principals.first?.secret == "config-secret-0123456789abcdef", "\(diagnostics)")
  }

  @Test func connectionsPerSourceStayBelowTheGlobalLimit() throws {
    let (defaults, _) = try load("")
    #expect(defaults?.maxConnectionsPerSource == 32)
    #expect(defaults?.headerTimeout == .seconds(5))
    let (small, _) = try load("max_connections: 8")
    #expect(small?.maxConnectionsPerSource == 4)
    let (set, setDiagnostics) = try load(
      "max_connections: 100\nmax_connections_per_source: 99\nheader_timeout: 2s")
    #expect(set?.maxConnectionsPerSource == 99, "\(setDiagnostics)")
    #expect(set?.headerTimeout == .seconds(2))
    let (bad, diagnostics) = try load("max_connections: 8\nmax_connections_per_source: 8")
    #expect(bad == nil)
    #expect(
      diagnostics.contains {
        $0.contains(
          "'max_connections_per_source' is 8; expected fewer than 'max_connections' (8), so that one source cannot take every connection."
        )
      }, "\(diagnostics)")
  }

  @Test func theRegionDefaultsToUSEast1AndTheReplayCacheSitsNextToTheAuditLog() throws {
    let (defaults, _) = try load("")
    #expect(defaults?.region == "us-east-1")
    #expect(defaults?.regionIsDefault == true)
    #expect(defaults?.replayCachePath == nil)
    let (set, diagnostics) = try load("region: eu-west-1\naudit_log: /var/log/sixty/audit.jsonl")
    #expect(set?.region == "eu-west-1" && set?.regionIsDefault == false, "\(diagnostics)")
    #expect(set?.replayCachePath == "/var/log/sixty/audit.jsonl.replays")
    let (explicit, _) = try load("audit_log: /a.jsonl\nreplay_cache: /var/lib/sixty/replays")
    #expect(explicit?.replayCachePath == "/var/lib/sixty/replays")
    let (bad, badDiagnostics) = try load("region: \"EU West\"")
    #expect(bad == nil)
    #expect(
      badDiagnostics.contains { $0.contains("'region' is 'EU West'; expected a region name") },
      "\(badDiagnostics)")
  }

  @Test func aReplayCacheInAMissingDirectoryIsAClearStartError() throws {
    #expect {
      try FileReplayCache(path: "/nonexistent-sixty-dir/replays", retention: 600, now: Date())
    } throws: { error in
      "\(error)".contains("cannot write the replay cache '/nonexistent-sixty-dir/replays'")
    }
  }

  @Test func connectionTimeoutsHaveDefaultsAndBounds() throws {
    let (defaults, _) = try load("")
    #expect(defaults?.idleTimeout == .seconds(30))
    #expect(defaults?.bodyTimeout == .seconds(10))
    let (set, setDiagnostics) = try load("idle_timeout: 5s\nbody_timeout: 1500ms")
    #expect(set?.idleTimeout == .seconds(5), "\(setDiagnostics)")
    #expect(set?.bodyTimeout.milliseconds == 1500)
    let (bad, diagnostics) = try load("idle_timeout: 2h\nbody_timeout: 10ms")
    #expect(bad == nil)
    #expect(
      diagnostics.contains {
        $0.contains("broker.yml:2:15: error: 'idle_timeout' must be between 100ms and 1h.")
      }, "\(diagnostics)")
    #expect(
      diagnostics.contains {
        $0.contains("broker.yml:3:15: error: 'body_timeout' must be between 100ms and 1h.")
      }, "\(diagnostics)")
  }
}

@Suite struct PlainHTTPTests {
  func parse(_ text: String) throws(PlainHTTP.Failure) -> PlainHTTP.Response {
    try PlainHTTP.parse(Array(text.utf8), limit: 64)
  }

  @Test func readsBodiesByLengthChunksOrEndOfStream() throws {
    #expect(
      try parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        == .init(status: 200, body: Array("hello".utf8)))
    #expect(
      try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n")
        .body
        == Array("hello".utf8))
    #expect(try parse("HTTP/1.0 401 Unauthorized\r\n\r\nno").status == 401)
  }

  @Test func refusesBrokenAnswers() {
    let cases: [(String, String)] = [
      ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "before its headers"),
      ("SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
      ("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello", "after 5 of 9 bytes"),
      ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a number"),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not hexadecimal"),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", "inside a chunk"),
      ("HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "x", count: 65), "larger than 64 bytes"),
      // Sizes and lengths are bytes, checked strictly and without overflow, and capped.
      (
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc\r\n",
        "a chunk size of 7fffffffffffffff (hex) is larger than the 64 bytes the answer may still hold"
      ),
      (
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n",
        "is larger than the 64 bytes"
      ),
      (
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n\(String(repeating: "a", count: 32))\r\n21\r\n",
        "a chunk size of 21 (hex) is larger than the 32 bytes the answer may still hold (at most 64 in all)"
      ),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n", "not hexadecimal"),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-0\r\n\r\n", "not hexadecimal"),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\u{FF13}\r\n", "not hexadecimal"),
      (
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
        "not followed by a line break"
      ),
      ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "expected chunked"),
      ("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "not a number"),
      ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "not a number"),
      ("HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", "larger than 64 bytes"),
      ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "two different"),
      ("HTTP/1.1 2000 OK\r\n\r\n", "not HTTP"),
    ]
    for (text, fragment) in cases {
      #expect(throws: PlainHTTP.Failure.self, "\(text)") { try parse(text) }
      do {
        _ = try parse(text)
      } catch {
        #expect(error.description.contains(fragment), "\(text): \(error)")
      }
    }
  }

  /// A listener on [::1] with a free port, or nil where the machine has no IPv6 loopback.
  static func ipv6Listener() -> (fd: Int32, port: UInt16)? {
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard bound else {
      close(fd)
      return nil
    }
    return (fd, UInt16(bigEndian: address.sin6_port))
  }

  /// The Host header of a request to an IPv6 literal keeps its brackets (RFC 9112 section 3.2,
  /// RFC 3986 section 3.2.2), as the URL has them.
  @Test(.enabled(if: ipv6Listener().map { close($0.fd) } != nil, "needs an IPv6 loopback"))
  func theHostHeaderOfAnIPv6BrokerKeepsItsBrackets() throws {
    let (listener, port) = try #require(Self.ipv6Listener())
    defer { close(listener) }
    let request = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var received = ""
    DispatchQueue.global().async {
      let connection = accept(listener, nil, nil)
      var buffer = [UInt8](repeating: 0, count: 4096)
      var text: [UInt8] = []
      while connection >= 0, !String(decoding: text, as: UTF8.self).contains("\r\n\r\n") {
        let n = read(connection, &buffer, buffer.count)
        if n <= 0 { break }
        text += buffer[0..<n]
      }
      received = String(decoding: text, as: UTF8.self)
      let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
      _ = write(connection, answer, answer.count)
      close(connection)
      request.signal()
    }
    let response = try PlainHTTP.get(
      URL(string: "http://[::1]:\(port)/agent/v1/keys")!, headers: [], timeout: 5)
    #expect(request.wait(timeout: .now() + 5) == .success)
    #expect(response == .init(status: 200, body: Array("ok".utf8)))
    #expect(received.contains("\r\nHost: [::1]:\(port)\r\n"), "\(received)")
  }

  @Test func headersWithLineBreaksAreRefused() {
    #expect(throws: PlainHTTP.Failure.self) {
      try PlainHTTP.get(
        URL(string: "http://127.0.0.1:1/x")!, headers: [("Authorization", "Bearer a\r\nX: y")], timeout: 1)
    }
  }
}

@Suite struct SourceConnectionLimiterTests {
  @Test func aSourceIsRefusedAtItsLimitAndServedAgainOnceAConnectionCloses() {
    let limiter = SourceConnectionLimiter(limit: 2, warningInterval: .seconds(10))
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    #expect(limiter.acquire("127.0.0.2", now: start) == .accepted)
    #expect(limiter.acquire("127.0.0.2", now: start) == .accepted)
    // Refused, with a warning at most once every 10 s.
    #expect(limiter.acquire("127.0.0.2", now: start) == .refused(warn: true))
    #expect(limiter.acquire("127.0.0.2", now: start + .seconds(9)) == .refused(warn: false))
    #expect(limiter.acquire("127.0.0.2", now: start + .seconds(10)) == .refused(warn: true))
    // Another source is counted apart.
    #expect(limiter.acquire("127.0.0.1", now: start) == .accepted)
    #expect(limiter.openConnections("127.0.0.2") == 2)
    limiter.release("127.0.0.2")
    #expect(limiter.acquire("127.0.0.2", now: start) == .accepted)
    // Entries go when their last connection does.
    for source in ["127.0.0.2", "127.0.0.2", "127.0.0.1"] { limiter.release(source) }
    #expect(limiter.sourceCount == 0)
  }

  @Test func sourcesAreIPv4AddressesAndIPv6Slash64s() throws {
    #expect(
      SourceConnectionLimiter.sourceKey(try SocketAddress(ipAddress: "10.1.2.3", port: 9)) == "10.1.2.3")
    let a = SourceConnectionLimiter.sourceKey(try SocketAddress(ipAddress: "2001:db8:1:2::1", port: 9))
    let b = SourceConnectionLimiter.sourceKey(try SocketAddress(ipAddress: "2001:db8:1:2:ffff::7", port: 9))
    let c = SourceConnectionLimiter.sourceKey(try SocketAddress(ipAddress: "2001:db8:1:3::1", port: 9))
    #expect(a == "2001:db8:1:2::/64" && a == b && a != c)
    #expect(
      SourceConnectionLimiter.sourceKey(try SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 9))
        == "10.1.2.3")
    #expect(SourceConnectionLimiter.sourceKey(nil) == nil)
  }
}
