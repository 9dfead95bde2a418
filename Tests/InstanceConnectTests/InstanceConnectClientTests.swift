import Foundation
import InstanceConnect
import Testing

/// A transport that answers from a script and records what it was sent.
final class FakeTransport: HTTPTransport, @unchecked Sendable {
  private let lock = NSLock()
  private var answers: [Result<HTTPResponse, any Error>]
  private(set) var sent: [HTTPRequest] = []

  init(_ answers: [Result<HTTPResponse, any Error>]) { self.answers = answers }

  func send(_ request: HTTPRequest) async throws -> HTTPResponse {
    let answer = lock.withLock {
      sent.append(request)
      return answers.isEmpty ? .failure(URLError(.cannotConnectToHost)) : answers.removeFirst()
    }
    return try answer.get()
  }

  var count: Int { lock.withLock { sent.count } }
}

func json(_ status: Int, _ body: String, headers: [String: String] = [:]) -> Result<HTTPResponse, any Error> {
  .success(HTTPResponse(status: status, headers: headers, body: Array(body.utf8)))
}

/// Sleeps recorded instead of slept; each one moves the fake clock forward by its length.
final class Sleeps: @unchecked Sendable {
  let lock = NSLock()
  var values: [Double] = []
  var elapsed = 0.0
  func add(_ v: Double) {
    lock.withLock {
      values.append(v)
      elapsed += v
    }
  }
  var now: Date { lock.withLock { Date(timeIntervalSince1970: 1_790_000_000 + elapsed) } }
}

@Suite struct InstanceConnectClientTests {
  static let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret/key")
  static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx5ZWtqZ2Rmc2xka2pmZ2xza2RqZmdsc2tkamZnbHNrZGpm test"
  static let request = SendSSHPublicKeyRequest(
    instanceID: "i-0123456789abcdef0", osUser: "ec2-user", publicKey: key)

  func client(
    _ transport: FakeTransport, sleeps: Sleeps = Sleeps(), attempts: Int = 4,
    endpoint: String? = "http://127.0.0.1:8600"
  )
    -> InstanceConnectClient
  {
    InstanceConnectClient(
      region: "eu-west-1", credentials: Self.credentials, endpoint: endpoint.flatMap(URL.init(string:)),
      transport: transport,
      retry: RetryPolicy(
        maxAttempts: attempts, base: 0.1, cap: 1, random: { 0.5 }, sleep: { sleeps.add($0) }),
      clock: { sleeps.now })
  }

  @Test func sendsSignedJSON11() async throws {
    let transport = FakeTransport([json(200, #"{"RequestId":"r-1","Success":true}"#)])
    let response = try await client(transport).sendSSHPublicKey(Self.request)
    #expect(response == SendSSHPublicKeyResponse(requestID: "r-1", success: true, attempts: 1))
    let sent = try #require(transport.sent.first)
    #expect(sent.url.absoluteString == "http://127.0.0.1:8600/")
    let headers = Dictionary(uniqueKeysWithValues: sent.headers.map { ($0.name.lowercased(), $0.value) })
    #expect(headers["x-amz-target"] == "AWSEC2InstanceConnectService.SendSSHPublicKey")
    #expect(headers["content-type"] == "application/x-amz-json-1.1")
    #expect(headers["host"] == "127.0.0.1:8600")
    #expect(headers["x-amz-date"] == "20260921T141320Z")
    #expect(
      headers["authorization"]?.hasPrefix(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260921/eu-west-1/ec2-instance-connect/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
      ) == true)
    let body = try #require(try JSONSerialization.jsonObject(with: Data(sent.body)) as? [String: String])
    #expect(
      body == ["InstanceId": "i-0123456789abcdef0", "InstanceOSUser": "ec2-user", "SSHPublicKey": Self.key])
    // The broker-side verifier accepts exactly what the client sent.
    let verified = try SigV4.verify(
      request: SigV4Request(method: "POST", path: "/", headers: sent.headers, body: sent.body),
      secretFor: { $0 == "AKIDEXAMPLE" ? "secret/key" : nil }, now: Date(timeIntervalSince1970: 1_790_000_030)
    )
    #expect(verified.service == "ec2-instance-connect")
  }

  @Test func regionalEndpoint() {
    #expect(
      InstanceConnectClient.endpoint(region: "eu-west-1").absoluteString
        == "https://ec2-instance-connect.eu-west-1.amazonaws.com")
    #expect(
      InstanceConnectClient.endpoint(region: "cn-north-1").absoluteString
        == "https://ec2-instance-connect.cn-north-1.amazonaws.com.cn")
  }

  @Test func throttlingIsRetriedWithFullJitter() async throws {
    let transport = FakeTransport([
      json(400, #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
      json(503, "<html>unavailable</html>"),
      .failure(URLError(.networkConnectionLost)),
      json(200, #"{"RequestId":"r-2","Success":true}"#),
    ])
    let sleeps = Sleeps()
    let response = try await client(transport, sleeps: sleeps).sendSSHPublicKey(Self.request)
    #expect(response.attempts == 4)
    // random() = 0.5 of min(cap 1, 0.1·2ⁿ): 0.05, 0.1, 0.2; then each retry waits for the next
    // second so it is never the same signed request as the attempt before.
    #expect(sleeps.values.count == 6)
    #expect(
      Array(sleeps.values.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)) == [0.05, 0.1, 0.2])
    let waits = sleeps.values.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
    #expect(
      abs(waits[0] - 0.95) < 1e-6 && abs(waits[1] - 0.9) < 1e-6 && abs(waits[2] - 0.8) < 1e-6, "\(waits)")
    let dates = transport.sent.map { $0.headers.first { $0.name == "X-Amz-Date" }?.value ?? "" }
    #expect(Set(dates).count == 4, "every attempt is signed in its own second: \(dates)")
  }

  @Test func theSameKeyPushedAgainInTheSameSecondIsSignedInTheNext() async throws {
    // A host's key pushed again straight after a dropped connection: the same body. Signed in
    // the same second it would be the same request, which the broker refuses as a replay.
    let ok = json(200, #"{"RequestId":"r","Success":true}"#)
    let transport = FakeTransport([ok, ok, ok, ok])
    let sleeps = Sleeps()
    sleeps.add(0.25)
    let first = client(transport, sleeps: sleeps)
    let copy = first  // runs share one client by value; its copies share what was signed
    _ = try await first.sendSSHPublicKey(Self.request)
    _ = try await copy.sendSSHPublicKey(Self.request)
    #expect(sleeps.values == [0.25, 0.75], "the second push waits for the next second: \(sleeps.values)")
    // Another host's push in that second is a different body and does not wait.
    _ = try await copy.sendSSHPublicKey(
      SendSSHPublicKeyRequest(instanceID: "i-0123456789abcdef1", osUser: "ec2-user", publicKey: Self.key))
    #expect(sleeps.values.count == 2)
    // A client of its own knows nothing of the first one's requests.
    _ = try await client(transport, sleeps: sleeps).sendSSHPublicKey(Self.request)
    #expect(sleeps.values.count == 2)
    let dates = transport.sent.map { $0.headers.first { $0.name == "X-Amz-Date" }?.value ?? "" }
    let signatures = transport.sent.map { $0.headers.first { $0.name == "Authorization" }?.value ?? "" }
    #expect(dates[0] != dates[1] && dates[1] == dates[2], "\(dates)")
    #expect(Set(signatures[0...2]).count == 3)
  }

  @Test func concurrentPushesOfOneBodyAreNeverIdentical() async throws {
    let transport = FakeTransport(Array(repeating: json(200, #"{"RequestId":"r","Success":true}"#), count: 8))
    let sleeps = Sleeps()
    let shared = client(transport, sleeps: sleeps)
    try await withThrowingTaskGroup(of: Void.self) { group in
      for _ in 0..<8 { group.addTask { _ = try await shared.sendSSHPublicKey(Self.request) } }
      try await group.waitForAll()
    }
    let signatures = transport.sent.map { $0.headers.first { $0.name == "Authorization" }?.value ?? "" }
    #expect(signatures.count == 8 && Set(signatures).count == 8, "\(signatures)")
  }

  @Test func retriesAreBounded() async throws {
    let transport = FakeTransport(
      Array(repeating: json(400, #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#), count: 10))
    await #expect(throws: InstanceConnectError.self) {
      try await client(transport, attempts: 3).sendSSHPublicKey(Self.request)
    }
    #expect(transport.count == 3)
  }

  @Test func jitterStaysWithinItsBound() {
    let policy = RetryPolicy(base: 0.2, cap: 3)
    for attempt in 0..<12 {
      let bound = min(3, 0.2 * pow(2, Double(attempt)))
      for _ in 0..<50 {
        let d = policy.delay(attempt: attempt)
        #expect(d >= 0 && d <= bound)
      }
    }
  }

  @Test(arguments: [
    "AuthException", "InvalidArgsException", "EC2InstanceNotFoundException",
    "EC2InstanceStateInvalidException",
    "EC2InstanceUnavailableException", "EC2InstanceTypeInvalidException",
    "SerialConsoleAccessDisabledException",
    "SerialConsoleSessionLimitExceededException", "SerialConsoleSessionUnavailableException",
    "SerialConsoleSessionUnsupportedException", "InvalidSignatureException", "UnrecognizedClientException",
    "ExpiredTokenException", "AccessDeniedException",
  ])
  func clientErrorsAreNotRetried(code: String) async throws {
    let transport = FakeTransport([
      json(
        400, #"{"__type":"com.amazonaws.ec2instanceconnect#\#(code)","Message":"detail for \#(code)."}"#,
        headers: ["x-amzn-requestid": "rq-9"])
    ])
    do {
      _ = try await client(transport).sendSSHPublicKey(Self.request)
      Issue.record("expected \(code) to fail")
    } catch {
      guard case .service(let service) = error else { Issue.record("unexpected \(error)"); return }
      #expect(service.code == code)
      #expect(service.requestID == "rq-9")
      #expect(error.description.contains("(\(code)): detail for \(code)"))
      #expect(error.description.hasSuffix("(request rq-9)."))
    }
    #expect(transport.count == 1)
  }

  @Test func errorShapes() {
    let xml = ServiceError.decode(
      status: 403, headers: [:],
      body: Array(
        "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message></Error><RequestId>abc</RequestId></ErrorResponse>"
          .utf8),
      endpoint: "http://127.0.0.1:5000")
    #expect(xml.code == "SignatureDoesNotMatch")
    #expect(xml.kind == .signature)
    #expect(
      xml.description
        == "The request signature was rejected by http://127.0.0.1:5000 (SignatureDoesNotMatch): The request signature we calculated does not match; check the secret access key and the clock (request abc)."
    )
    let header = ServiceError.decode(
      status: 400, headers: ["x-amzn-errortype": "ThrottlingException:http://internal"], body: [],
      endpoint: "e")
    #expect(header.code == "ThrottlingException")
    #expect(header.isRetryable)
    let server = ServiceError.decode(status: 500, headers: [:], body: Array("oops".utf8), endpoint: "e")
    #expect(server.code == "HTTP500")
    #expect(server.isRetryable)
  }

  @Test func validationFollowsTheServiceModel() async {
    let transport = FakeTransport([])
    let c = client(transport)
    for (request, field) in [
      (SendSSHPublicKeyRequest(instanceID: "i-XYZ", osUser: "ec2-user", publicKey: Self.key), "InstanceId"),
      (
        SendSSHPublicKeyRequest(
          instanceID: "i-0123456789abcdef0", osUser: "-oProxyCommand", publicKey: Self.key), "InstanceOSUser"
      ),
      (
        SendSSHPublicKeyRequest(
          instanceID: "i-0123456789abcdef0", osUser: "ec2-user", publicKey: "ssh-ed25519 short"),
        "SSHPublicKey"
      ),
      (
        SendSSHPublicKeyRequest(
          instanceID: "i-0123456789abcdef0", osUser: "ec2-user", publicKey: Self.key, availabilityZone: "moon"
        ), "AvailabilityZone"
      ),
    ] {
      do {
        _ = try await c.sendSSHPublicKey(request)
        Issue.record("expected \(field) to be refused")
      } catch {
        guard case .invalidParameter(let f, _, _) = error else {
          Issue.record("unexpected \(error)"); continue
        }
        #expect(f == field)
      }
    }
    #expect(transport.count == 0)
  }

  @Test(arguments: [
    ("ec2-user", true), ("ubuntu", true), ("_svc", true), ("a", true), ("user$", true), ("1password", true),
    ("12", false),
    ("-x", false), ("a b", false), ("", false), (String(repeating: "a", count: 33), false),
    ("root;id", false),
  ])
  func osUserPattern(user: String, valid: Bool) {
    #expect(InstanceConnectValidation.isOSUser(user) == valid)
  }

  @Test func modelConstraintsMatchTheBundledModel() throws {
    let url = TestResources.url("aws-models/ec2-instance-connect-2018-04-02.json")
    let model = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let shapes = try #require(model["shapes"] as? [String: [String: Any]])
    #expect(shapes["SSHPublicKey"]?["min"] as? Int == InstanceConnectValidation.publicKeyLength.lowerBound)
    #expect(shapes["SSHPublicKey"]?["max"] as? Int == InstanceConnectValidation.publicKeyLength.upperBound)
    #expect(shapes["InstanceId"]?["pattern"] as? String == "^i-[a-f0-9]+$")
    #expect(shapes["SerialPort"]?["max"] as? Int == InstanceConnectValidation.serialPorts.upperBound)
    let errors = Set(shapes.filter { $0.value["exception"] as? Bool == true }.keys)
    for code in errors {
      let error = ServiceError(code: code, message: "m", status: 400, requestID: nil, endpoint: "e")
      #expect(error.kind != .other, "\(code) has no dedicated message")
    }
  }

  @Test func serialConsolePush() async throws {
    let transport = FakeTransport([json(200, #"{"RequestId":"r-3","Success":true}"#)])
    _ = try await client(transport).sendSerialConsoleSSHPublicKey(
      instanceID: "i-0123456789abcdef0", publicKey: Self.key)
    let sent = try #require(transport.sent.first)
    #expect(
      sent.headers.contains {
        $0.name == "X-Amz-Target" && $0.value == "AWSEC2InstanceConnectService.SendSerialConsoleSSHPublicKey"
      })
    await #expect(throws: InstanceConnectError.self) {
      _ = try await client(transport).sendSerialConsoleSSHPublicKey(
        instanceID: "i-0123456789abcdef0", publicKey: Self.key, serialPort: 1)
    }
  }

  @Test func connectionRefusedIsASentence() async {
    let c = InstanceConnectClient(
      region: "us-east-1", credentials: Self.credentials, endpoint: URL(string: "http://127.0.0.1:9"),
      retry: RetryPolicy(maxAttempts: 2, random: { 0 }, sleep: { _ in }))
    do {
      _ = try await c.sendSSHPublicKey(Self.request)
      Issue.record("expected a failure")
    } catch {
      #expect(error.description == "Could not reach http://127.0.0.1:9: the connection was refused.")
    }
  }
}
