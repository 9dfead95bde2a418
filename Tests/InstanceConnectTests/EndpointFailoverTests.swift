import Foundation
import Testing

@testable import InstanceConnect

/// A transport whose answers depend on the endpoint (host:port) a request goes to: a script per
/// endpoint, its last answer repeated; it records where each request went and its Host header.
final class RoutedTransport: HTTPTransport, @unchecked Sendable {
  private let lock = NSLock()
  // Behind `lock`.
  private var scripts: [String: [Result<HTTPResponse, any Error>]]
  private var log: [(endpoint: String, host: String, authorization: String)] = []

  init(_ scripts: [String: [Result<HTTPResponse, any Error>]]) { self.scripts = scripts }

  func send(_ request: HTTPRequest) async throws -> HTTPResponse {
    let endpoint = "\(request.url.host ?? ""):\(request.url.port ?? 0)"
    let answer: Result<HTTPResponse, any Error> = lock.withLock {
      log.append(
        (
          endpoint, request.headers.first { $0.name == "Host" }?.value ?? "",
          request.headers.first { $0.name == "Authorization" }?.value ?? ""
        ))
      guard var script = scripts[endpoint], let first = script.first else {
        return .failure(URLError(.cannotConnectToHost))
      }
      if script.count > 1 {
        script.removeFirst()
        scripts[endpoint] = script
      }
      return first
    }
    return try answer.get()
  }

  /// host:port of each request, in order.
  var endpoints: [String] { lock.withLock { log.map(\.endpoint) } }
  var hostHeaders: [String] { lock.withLock { log.map(\.host) } }
  var authorizations: [String] { lock.withLock { log.map(\.authorization) } }
}

/// `--endpoint http://b1:8600,http://b2:8600`: the list, and a client that moves on to the next
/// endpoint on a connection error, a timeout or a 5xx answer, never on a 4xx one, and sticks to
/// the endpoint that last answered.
@Suite struct EndpointFailoverTests {
  static let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret/key")
  static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx5ZWtqZ2Rmc2xka2pmZ2xza2RqZmdsc2tkamZnbHNrZGpm test"
  static func request(_ n: Int = 0) -> SendSSHPublicKeyRequest {
    SendSSHPublicKeyRequest(instanceID: String(format: "i-%016x", n + 1), osUser: "ec2-user", publicKey: key)
  }
  static let ok: Result<HTTPResponse, any Error> = .success(
    HTTPResponse(status: 200, headers: [:], body: Array(#"{"RequestId":"r-ok","Success":true}"#.utf8)))
  static func status(_ status: Int, _ body: String) -> Result<HTTPResponse, any Error> {
    .success(HTTPResponse(status: status, headers: [:], body: Array(body.utf8)))
  }

  func client(
    _ transport: RoutedTransport, endpoints: [String] = ["http://10.0.0.1:8600", "http://10.0.0.2:8600"],
    sleeps: Sleeps = Sleeps(), attempts: Int = 3, returnToFirstAfter: Double = 300
  ) -> InstanceConnectClient {
    InstanceConnectClient(
      region: "us-east-1", credentials: Self.credentials, endpoints: endpoints.compactMap(URL.init(string:)),
      transport: transport,
      retry: RetryPolicy(
        maxAttempts: attempts, base: 0.1, cap: 1, random: { 0.5 }, sleep: { sleeps.add($0) }),
      returnToFirstAfter: returnToFirstAfter, clock: { sleeps.now })
  }

  // MARK: the list

  @Test func aListIsURLsSeparatedByCommas() throws {
    #expect(
      try EndpointList.parse("http://127.0.0.1:8600", source: "--endpoint").map(\.absoluteString) == [
        "http://127.0.0.1:8600"
      ])
    #expect(
      try EndpointList.parse("http://b1:8600,https://b2.example.com/ , http://[::1]:9", source: "--endpoint")
        .map(\.absoluteString) == ["http://b1:8600", "https://b2.example.com/", "http://[::1]:9"])
    let eight = (1...8).map { "http://b\($0):8600" }.joined(separator: ",")
    #expect(try EndpointList.parse(eight, source: "--endpoint").count == 8)
  }

  @Test(arguments: [
    (
      "ftp://b1",
      "--endpoint 'ftp://b1' is not an http(s) URL; expected something like http://127.0.0.1:8600."
    ),
    ("", "--endpoint is empty; expected something like http://127.0.0.1:8600."),
    (
      "http://b1:8600,,http://b2:8600",
      "--endpoint 'http://b1:8600,,http://b2:8600' has an empty item (item 2 of 3); expected http(s) URLs separated by single commas, like http://b1:8600,http://b2:8600."
    ),
    (
      "http://b1:8600,",
      "--endpoint 'http://b1:8600,' has an empty item (item 2 of 2); expected http(s) URLs separated by single commas, like http://b1:8600,http://b2:8600."
    ),
    (
      "http://b1:8600, file:///etc/passwd",
      "--endpoint lists 'file:///etc/passwd' (item 2 of 2), which is not an http(s) URL; expected something like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,http://",
      "--endpoint lists 'http://' (item 2 of 2), which is not an http(s) URL; expected something like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,b2:8600",
      "--endpoint lists 'b2:8600' (item 2 of 2), which is not an http(s) URL; expected something like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,HTTP://b2:8600",
      "--endpoint lists 'HTTP://b2:8600' (item 2 of 2), which is not an http(s) URL; expected something like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,http://b 2:8600",
      "--endpoint lists 'http://b 2:8600' (item 2 of 2), which contains a space, a control character or a non-ASCII character; expected an http(s) URL in printable ASCII (an international host name in its xn-- form), like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,http://bröker:8600",
      "--endpoint lists 'http://bröker:8600' (item 2 of 2), which contains a space, a control character or a non-ASCII character; expected an http(s) URL in printable ASCII (an international host name in its xn-- form), like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,http://b\u{202E}2:8600",
      "--endpoint lists 'http://b\\u{202e}2:8600' (item 2 of 2), which contains a space, a control character or a non-ASCII character; expected an http(s) URL in printable ASCII (an international host name in its xn-- form), like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,http://b\n2",
      "--endpoint lists 'http://b\\n2' (item 2 of 2), which contains a space, a control character or a non-ASCII character; expected an http(s) URL in printable ASCII (an international host name in its xn-- form), like http://127.0.0.1:8600."
    ),
    (
      "http://b1:8600,http://b1:8600/",
      "--endpoint lists 'http://b1:8600/' (item 2 of 2), which is listed twice; expected each endpoint once."
    ),
  ])
  func aBadListNamesTheItemAtFault(text: String, message: String) {
    let error = #expect(throws: EndpointList.Error.self) {
      try EndpointList.parse(text, source: "--endpoint")
    }
    #expect(error?.description == message)
  }

  @Test func atMostEightEndpoints() {
    let nine = (1...9).map { "http://b\($0):8600" }.joined(separator: ",")
    let error = #expect(throws: EndpointList.Error.self) {
      try EndpointList.parse(nine, source: "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT")
    }
    #expect(
      error?.description
        == "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT lists 9 endpoints; at most 8 are allowed (tried in order until one answers)."
    )
    // A huge hostile list is refused without parsing each item.
    let many = String(repeating: "x,", count: 100_000)
    #expect(throws: EndpointList.Error.self) { try EndpointList.parse(many, source: "--endpoint") }
  }

  // MARK: the client

  @Test func aRefusedConnectionMovesOnAndSignsForTheNextHost() async throws {
    let transport = RoutedTransport(["10.0.0.2:8600": [Self.ok]])
    let sleeps = Sleeps()
    let response = try await client(transport, sleeps: sleeps).sendSSHPublicKey(Self.request())
    #expect(transport.endpoints == ["10.0.0.1:8600", "10.0.0.2:8600"])
    #expect(transport.hostHeaders == ["10.0.0.1:8600", "10.0.0.2:8600"], "signed anew for each endpoint")
    #expect(Set(transport.authorizations).count == 2)
    #expect(response.attempts == 2)
    #expect(
      response.failover
        == .init(
          failures: [EndpointFailure(endpoint: "http://10.0.0.1:8600", reason: "the connection was refused")],
          servedBy: "http://10.0.0.2:8600"))
    #expect(sleeps.values.isEmpty, "a failover neither backs off nor waits for the next second")
  }

  @Test(arguments: [500, 502, 503, 504])
  func aServerErrorMovesOn(status: Int) async throws {
    let transport = RoutedTransport([
      "10.0.0.1:8600": [Self.status(status, #"{"__type":"ServiceUnavailable","message":"down"}"#)],
      "10.0.0.2:8600": [Self.ok],
    ])
    let response = try await client(transport).sendSSHPublicKey(Self.request())
    #expect(transport.endpoints == ["10.0.0.1:8600", "10.0.0.2:8600"])
    #expect(response.failover?.failures.first?.reason == "HTTP \(status) (ServiceUnavailable): down")
    #expect(response.failover?.servedBy == "http://10.0.0.2:8600")
  }

  @Test func aTimeoutMovesOn() async throws {
    let transport = RoutedTransport([
      "10.0.0.1:8600": [.failure(URLError(.timedOut))], "10.0.0.2:8600": [Self.ok],
    ])
    let response = try await client(transport).sendSSHPublicKey(Self.request())
    #expect(
      response.failover?.failures == [
        EndpointFailure(endpoint: "http://10.0.0.1:8600", reason: "the request timed out")
      ])
  }

  @Test func throttlingIsNoReasonToMoveOn() async throws {
    let throttled = Self.status(400, #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
    let transport = RoutedTransport([
      "10.0.0.1:8600": [throttled, throttled, Self.ok], "10.0.0.2:8600": [Self.ok],
    ])
    let sleeps = Sleeps()
    let response = try await client(transport, sleeps: sleeps).sendSSHPublicKey(Self.request())
    #expect(
      transport.endpoints == ["10.0.0.1:8600", "10.0.0.1:8600", "10.0.0.1:8600"], "retried where it was")
    #expect(response.failover == nil)
    #expect(sleeps.values.count == 4, "backoff, then the next second, twice: \(sleeps.values)")
  }

  @Test(arguments: ["AccessDeniedException", "InvalidSignatureException", "EC2InstanceNotFoundException"])
  func aClientErrorEndsThePushAtTheFirstEndpoint(code: String) async throws {
    let transport = RoutedTransport([
      "10.0.0.1:8600": [Self.status(403, #"{"__type":"\#(code)","message":"no"}"#)],
      "10.0.0.2:8600": [Self.ok],
    ])
    do {
      _ = try await client(transport).sendSSHPublicKey(Self.request())
      Issue.record("expected \(code)")
    } catch {
      guard case .service(let service) = error else {
        Issue.record("unexpected \(error)")
        return
      }
      #expect(service.code == code && service.endpoint == "http://10.0.0.1:8600")
    }
    #expect(transport.endpoints == ["10.0.0.1:8600"])
  }

  @Test func whenEveryEndpointFailsOneErrorNamesEachAndWhy() async throws {
    let transport = RoutedTransport([
      "10.0.0.2:8600": [Self.status(503, "<html>busy</html>")],
      "10.0.0.3:8600": [.failure(URLError(.timedOut))],
    ])
    let c = client(
      transport, endpoints: ["http://10.0.0.1:8600", "http://10.0.0.2:8600/", "http://10.0.0.3:8600"],
      attempts: 2)
    do {
      _ = try await c.sendSSHPublicKey(Self.request())
      Issue.record("expected a failure")
    } catch {
      #expect(
        error
          == .allEndpointsFailed([
            EndpointFailure(endpoint: "http://10.0.0.1:8600", reason: "the connection was refused"),
            EndpointFailure(endpoint: "http://10.0.0.2:8600", reason: "HTTP 503 (HTTP503)"),
            EndpointFailure(endpoint: "http://10.0.0.3:8600", reason: "the request timed out"),
          ]))
      #expect(
        error.description
          == "None of the 3 Instance Connect endpoints answered (each was tried in order, the next on a connection error, a timeout or an HTTP 5xx answer): http://10.0.0.1:8600: the connection was refused; http://10.0.0.2:8600: HTTP 503 (HTTP503); http://10.0.0.3:8600: the request timed out."
      )
    }
    // Two rounds (the retry policy's two attempts) of three.
    #expect(transport.endpoints.count == 6)
  }

  @Test func aFailoverIsReportedOnceHoweverManyRoundsItTook() async throws {
    let busy = Self.status(503, "")
    let transport = RoutedTransport(["10.0.0.2:8600": [busy, busy, Self.ok]])
    let response = try await client(transport, attempts: 5).sendSSHPublicKey(Self.request())
    #expect(
      transport.endpoints == [
        "10.0.0.1:8600", "10.0.0.2:8600", "10.0.0.2:8600", "10.0.0.1:8600", "10.0.0.1:8600", "10.0.0.2:8600",
      ])
    #expect(response.attempts == 6)
    #expect(
      response.failover
        == .init(
          failures: [
            EndpointFailure(endpoint: "http://10.0.0.1:8600", reason: "the connection was refused"),
            EndpointFailure(endpoint: "http://10.0.0.2:8600", reason: "HTTP 503 (HTTP503)"),
          ], servedBy: "http://10.0.0.2:8600"))
  }

  @Test func aSingleEndpointFailsAsBefore() async throws {
    let transport = RoutedTransport([:])
    do {
      _ = try await client(transport, endpoints: ["http://10.0.0.1:8600"], attempts: 2).sendSSHPublicKey(
        Self.request())
      Issue.record("expected a failure")
    } catch {
      #expect(error.description == "Could not reach http://10.0.0.1:8600: the connection was refused.")
    }
  }

  @Test func laterPushesStartWithTheEndpointThatLastAnswered() async throws {
    let transport = RoutedTransport(["10.0.0.2:8600": [Self.ok]])
    let sleeps = Sleeps()
    let shared = client(transport, sleeps: sleeps, returnToFirstAfter: 60)
    let first = try await shared.sendSSHPublicKey(Self.request(0))
    #expect(first.failover != nil)
    #expect(shared.preference.current == 1)
    // Concurrent pushes of other hosts, through copies of the client: straight to the second.
    let copy = shared
    try await withThrowingTaskGroup(of: SendSSHPublicKeyResponse.self) { group in
      for n in 1...6 { group.addTask { try await copy.sendSSHPublicKey(Self.request(n)) } }
      for try await response in group { #expect(response.failover == nil && response.attempts == 1) }
    }
    #expect(transport.endpoints == ["10.0.0.1:8600"] + Array(repeating: "10.0.0.2:8600", count: 7))
    // After `returnToFirstAfter`, the first is tried first again (it may be back; it is not).
    sleeps.add(61)
    let later = try await shared.sendSSHPublicKey(Self.request(7))
    #expect(later.failover?.failures.map(\.endpoint) == ["http://10.0.0.1:8600"])
    #expect(transport.endpoints.suffix(2) == ["10.0.0.1:8600", "10.0.0.2:8600"])
  }

  @Test func aPreferredEndpointThatFailsHandsThePreferenceOn() async throws {
    // The second answers at first, then goes down: the push goes back to the first, which then
    // stays preferred.
    let transport = RoutedTransport([
      "10.0.0.1:8600": [.failure(URLError(.cannotConnectToHost)), Self.ok],
      "10.0.0.2:8600": [Self.ok, .failure(URLError(.networkConnectionLost))],
    ])
    let shared = client(transport)
    _ = try await shared.sendSSHPublicKey(Self.request(0))
    #expect(shared.preference.current == 1)
    let second = try await shared.sendSSHPublicKey(Self.request(1))
    #expect(
      second.failover
        == .init(
          failures: [EndpointFailure(endpoint: "http://10.0.0.2:8600", reason: "the connection was lost")],
          servedBy: "http://10.0.0.1:8600"))
    #expect(shared.preference.current == 0)
    #expect(transport.endpoints == ["10.0.0.1:8600", "10.0.0.2:8600", "10.0.0.2:8600", "10.0.0.1:8600"])
  }

  @Test func theFailoverOrderKeepsTheConfiguredOrderAfterThePreferredOne() {
    let preference = EndpointPreference(count: 4, returnToFirstAfter: 300)
    let now = Date(timeIntervalSince1970: 1_000)
    #expect(preference.order(now: now) == [0, 1, 2, 3])
    preference.answered(2, now: now)
    #expect(preference.order(now: now) == [2, 0, 1, 3])
    // A failure of an endpoint no longer preferred leaves the preference alone.
    preference.failed(0, next: 1, now: now)
    #expect(preference.current == 2)
    #expect(preference.order(now: now.addingTimeInterval(300)) == [0, 1, 2, 3])
  }
}
