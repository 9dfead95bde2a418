import Crypto
import Foundation
import Logging

/// `SendSSHPublicKey` input.
public struct SendSSHPublicKeyRequest: Sendable, Equatable {
  public var instanceID: String
  public var osUser: String
  public var publicKey: String
  public var availabilityZone: String?

  public init(instanceID: String, osUser: String, publicKey: String, availabilityZone: String? = nil) {
    self.instanceID = instanceID
    self.osUser = osUser
    self.publicKey = publicKey
    self.availabilityZone = availabilityZone
  }
}

/// The service's answer to a push.
public struct SendSSHPublicKeyResponse: Sendable, Equatable {
  public var requestID: String
  public var success: Bool
  /// How many requests it took (throttling and server errors are retried, and with several
  /// endpoints a failover is one more request).
  public var attempts: Int
  /// Set when an endpoint failed before another one took the push: which failed and why, and
  /// which answered. Nil when the first endpoint tried answered.
  public var failover: Failover?

  /// `SignSSHPublicKey` only: the OpenSSH user certificate (a `-cert.pub` line) and its serial.
  public var certificate: String?
  public var serial: UInt64?

  /// Endpoints that failed on the way, and the one that answered.
  public struct Failover: Sendable, Equatable {
    public var failures: [EndpointFailure]
    public var servedBy: String
    public init(failures: [EndpointFailure], servedBy: String) {
      self.failures = failures
      self.servedBy = servedBy
    }
  }

  public init(requestID: String, success: Bool, attempts: Int, failover: Failover? = nil) {
    self.requestID = requestID
    self.success = success
    self.attempts = attempts
    self.failover = failover
  }
}

/// A client for the EC2 Instance Connect API (AWS JSON 1.1, SigV4), usable against AWS itself,
/// `sixty broker`, or any compatible endpoint. Safe to share between concurrent tasks.
///
/// With several endpoints (broker replicas sharing one database), a push goes to the preferred
/// one and moves on to the next on a connection error, a timeout or an HTTP 5xx answer, signed
/// anew for each (SigV4 signs the Host header). A 4xx answer is not a reason to move on. The
/// endpoint that last answered becomes the preferred one for every later push of this client
/// and its copies, so a dead first replica costs one failover, not one per host.
public struct InstanceConnectClient: Sendable {
  /// One per endpoint, in the configured order.
  let callers: [AWSCaller]
  let logger: Logger?
  /// Shared by every copy of this client, so no two of its requests are ever byte-identical.
  let ledger = SignedRequestLedger()
  /// Shared by every copy of this client: which endpoint a push tries first.
  let preference: EndpointPreference
  /// Paces every request (each attempt of each push) and learns from throttled answers; nil sends
  /// at once. A throttled push gets at least `throttledAttempts` attempts with a pacer, which
  /// slows the requests down until the endpoint takes them.
  public var pacer: AdaptivePacer?
  public static let throttledAttempts = 10

  /// The first endpoint's caller (the only one without failover).
  var caller: AWSCaller { callers[0] }

  public static let service = "ec2-instance-connect"
  public static let targetPrefix = "AWSEC2InstanceConnectService"

  /// - Parameters:
  ///   - endpoint: an explicit endpoint (the broker, moto); nil for AWS's regional endpoint.
  ///   - credentials: long-term keys, or a provider (`CredentialChain.provider()`) asked before
  ///     every request.
  public init(
    region: String, credentials: any AWSCredentialsProvider, endpoint: URL? = nil,
    transport: any HTTPTransport = URLSessionTransport(),
    retry: RetryPolicy = RetryPolicy(), logger: Logger? = nil,
    clock: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.init(
      region: region, credentials: credentials, endpoints: endpoint.map { [$0] } ?? [], transport: transport,
      retry: retry, logger: logger, clock: clock)
  }

  /// - Parameters:
  ///   - endpoints: explicit endpoints tried in this order (see `EndpointList`); empty for AWS's
  ///     regional endpoint.
  ///   - returnToFirstAfter: how long after a failover pushes stay with the endpoint that
  ///     answered before the first one is tried first again (it may be back).
  public init(
    region: String, credentials: any AWSCredentialsProvider, endpoints: [URL],
    transport: any HTTPTransport = URLSessionTransport(),
    retry: RetryPolicy = RetryPolicy(), logger: Logger? = nil,
    returnToFirstAfter: Double = 300,
    clock: @escaping @Sendable () -> Date = { Date() }
  ) {
    let urls = endpoints.isEmpty ? [Self.endpoint(region: region)] : endpoints
    callers = urls.map {
      AWSCaller(
        service: Self.service, endpoint: $0, region: region, credentials: credentials, transport: transport,
        retry: retry, clock: clock)
    }
    self.logger = logger
    preference = EndpointPreference(count: urls.count, returnToFirstAfter: returnToFirstAfter)
  }

  /// The first endpoint.
  public var endpoint: URL { caller.endpoint }
  /// Every endpoint, in the configured order.
  public var endpoints: [URL] { callers.map(\.endpoint) }
  public var region: String { caller.region }
  public var credentials: any AWSCredentialsProvider { caller.credentials }

  /// `https://ec2-instance-connect.REGION.amazonaws.com` (`.amazonaws.com.cn` in China).
  public static func endpoint(region: String) -> URL {
    AWSCaller.regionalEndpoint("ec2-instance-connect", region: region)
  }

  /// Checks a request against the service model before anything is sent.
  public static func validate(_ request: SendSSHPublicKeyRequest) throws(InstanceConnectError) {
    guard InstanceConnectValidation.isInstanceID(request.instanceID) else {
      throw .invalidParameter(
        field: "InstanceId", value: request.instanceID,
        expected: "'i-' followed by lowercase hex digits, 10 to 32 characters")
    }
    guard InstanceConnectValidation.isOSUser(request.osUser) else {
      throw .invalidParameter(
        field: "InstanceOSUser", value: request.osUser,
        expected: "a user name of 1 to 32 letters, digits, '.', '_', '-' or '@' that does not start with '-'")
    }
    guard InstanceConnectValidation.publicKeyLength.contains(request.publicKey.utf8.count) else {
      throw .invalidParameter(
        field: "SSHPublicKey", value: String(request.publicKey.prefix(24)) + "…",
        expected: "an OpenSSH public key of 80 to 4096 characters (it is \(request.publicKey.utf8.count))")
    }
    if let zone = request.availabilityZone, !InstanceConnectValidation.isAvailabilityZone(zone) {
      throw .invalidParameter(
        field: "AvailabilityZone", value: zone, expected: "an availability zone name like us-east-1a")
    }
  }

  /// Pushes a public key for `osUser` on the instance; valid for 60 seconds on AWS.
  public func sendSSHPublicKey(_ request: SendSSHPublicKeyRequest) async throws(InstanceConnectError)
    -> SendSSHPublicKeyResponse
  {
    try Self.validate(request)
    return try await call("SendSSHPublicKey", body: Self.body(request))
  }

  /// The JSON fields of `SendSSHPublicKey` and `SignSSHPublicKey`.
  static func body(_ request: SendSSHPublicKeyRequest) -> [String: Any] {
    var w = [String: Any]()
    w["InstanceId"] = request.instanceID
    w["InstanceOSUser"] = request.osUser
    w["SSHPublicKey"] = request.publicKey
    if let zone = request.availabilityZone { w["AvailabilityZone"] = zone }
    return w
  }

  /// Asks a `sixty broker` that is a certificate authority for an OpenSSH user certificate of
  /// `publicKey` for `osUser` on the instance (`SignSSHPublicKey`, same request shape, signing and
  /// retries as `SendSSHPublicKey`); the answer's `certificate` holds it.
  public func signSSHPublicKey(_ request: SendSSHPublicKeyRequest) async throws(InstanceConnectError)
    -> SendSSHPublicKeyResponse
  {
    try Self.validate(request)
    let answer = try await call("SignSSHPublicKey", body: Self.body(request))
    guard let certificate = answer.certificate, Self.isCertificateLine(certificate) else {
      throw .service(
        ServiceError(
          code: "MalformedResponse",
          message: "the answer to SignSSHPublicKey holds no OpenSSH certificate line", status: 200,
          requestID: answer.requestID, endpoint: caller.endpointDescription))
    }
    return answer
  }

  /// `TYPE-cert-v01@openssh.com BASE64 [comment]` on one line of printable ASCII, at most 16 KB:
  /// what may be written to a `-cert.pub` file for ssh to read.
  static func isCertificateLine(_ line: String) -> Bool {
    let bytes = Array(line.utf8)
    guard bytes.count <= 16 * 1024, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return false }
    let fields = line.split(separator: " ", omittingEmptySubsequences: false)
    guard fields.count >= 2, fields[0].hasSuffix("-cert-v01@openssh.com"), !fields[1].isEmpty,
      Data(base64Encoded: String(fields[1])) != nil
    else { return false }
    return true
  }

  /// Pushes a key for the EC2 serial console (port 0).
  public func sendSerialConsoleSSHPublicKey(instanceID: String, publicKey: String, serialPort: Int = 0)
    async throws(InstanceConnectError) -> SendSSHPublicKeyResponse
  {
    try Self.validate(SendSSHPublicKeyRequest(instanceID: instanceID, osUser: "root", publicKey: publicKey))
    guard InstanceConnectValidation.serialPorts.contains(serialPort) else {
      throw .invalidParameter(field: "SerialPort", value: String(serialPort), expected: "0")
    }
    return try await call(
      "SendSerialConsoleSSHPublicKey",
      body: ["InstanceId": instanceID, "SSHPublicKey": publicKey, "SerialPort": serialPort])
  }

  func call(_ operation: String, body object: [String: Any]) async throws(InstanceConnectError)
    -> SendSSHPublicKeyResponse
  {
    let body: [UInt8]
    do {
      body = Array(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    } catch {
      throw .invalidParameter(field: "request", value: operation, expected: "JSON-encodable values")
    }
    let retry = caller.retry
    var attempt = 0
    var requests = 0
    // Every failover of this push, in order, for the response.
    var failovers: [EndpointFailure] = []
    // Each endpoint's latest failure, for the error when none answers.
    var latest: [Int: InstanceConnectError] = [:]
    while true {
      attempt += 1
      // One round: the preferred endpoint, then the others in the configured order, until one
      // answers or gives an answer that is not a reason to move on.
      let order = preference.order(now: caller.clock())
      var last: InstanceConnectError?
      endpoints: for (position, index) in order.enumerated() {
        let current = callers[index]
        let ticket = await pacer?.acquire()
        let result = try await send(operation, body: body, via: current, attempts: requests + 1)
        if let pacer, let ticket {
          if case .failure(.service(let error)) = result, error.kind == .throttling {
            pacer.record(ticket, throttled: true)
          } else {
            pacer.record(ticket, throttled: false)
          }
        }
        requests += 1
        switch result {
        case .success(var value):
          preference.answered(index, now: caller.clock())
          value.attempts = requests
          if !failovers.isEmpty {
            value.failover = .init(failures: failovers, servedBy: current.endpointDescription)
          }
          return value
        case .failure(let error):
          last = error
          guard callers.count > 1, error.isFailoverReason else { break endpoints }
          latest[index] = error
          guard position + 1 < order.count else { break endpoints }
          let next = order[position + 1]
          preference.failed(index, next: next, now: caller.clock())
          let failure = EndpointFailure(endpoint: current.endpointDescription, reason: error.failoverReason)
          // Once per endpoint and reason, however many rounds it took.
          if !failovers.contains(failure) { failovers.append(failure) }
          logger?.debug("\(operation): \(failure); trying \(callers[next].endpointDescription)")
        }
      }
      guard var error = last else { continue }
      if callers.count > 1, error.isFailoverReason {
        // Every endpoint failed in this round: name each with its latest failure.
        error = .allEndpointsFailed(
          callers.indices.map { index in
            EndpointFailure(
              endpoint: callers[index].endpointDescription,
              reason: latest[index]?.failoverReason ?? "not tried")
          })
      }
      var attempts = retry.maxAttempts
      var paced = false
      if pacer != nil, case .service(let answer) = error, answer.kind == .throttling {
        attempts = max(attempts, Self.throttledAttempts)
        paced = true
      }
      guard error.isRetryable, attempt < attempts else { throw error }
      // A throttled push with a pacer waits for the pacer (which has just slowed down), not for
      // a growing backoff of its own that would leave the pace unused.
      let wait = retry.delay(attempt: paced ? 0 : attempt - 1)
      logger?.debug("retrying \(operation) in \(wait) s after: \(error)")
      do {
        try await retry.sleep(wait)
      } catch {
        throw .transport(endpoint: caller.endpointDescription, message: "cancelled while waiting to retry")
      }
    }
  }

  /// One request to one endpoint: signed for it, sent, and its answer interpreted.
  /// - Throws: what stops the push at once: no credentials, or a cancelled wait to sign.
  func send(_ operation: String, body: [UInt8], via caller: AWSCaller, attempts: Int)
    async throws(InstanceConnectError) -> Result<SendSSHPublicKeyResponse, InstanceConnectError>
  {
    let request: HTTPRequest
    do {
      request = try await signedRequestNeverSentBefore(operation, body: body, via: caller)
    } catch let error as InstanceConnectError {
      throw error
    } catch {
      throw .transport(endpoint: caller.endpointDescription, message: "cancelled while waiting to sign")
    }
    do {
      let response = try await caller.transport.send(request)
      return Self.interpret(response, endpoint: caller.endpointDescription, attempts: attempts)
    } catch {
      return .failure(.transport(endpoint: caller.endpointDescription, message: Self.describe(error)))
    }
  }

  /// Signs the request in a second in which this client has not signed the same body for the
  /// same endpoint yet, waiting for the next second if it has. A SigV4 signature covers the body,
  /// the Host header and the time to the second, so the same body signed twice in one second
  /// for one endpoint is the same request, which a broker refuses as a replay. This happens when
  /// a host's key is pushed again straight after a dropped connection, and for a retry that
  /// fails fast. (Another endpoint's Host makes another signature: a failover does not wait.)
  func signedRequestNeverSentBefore(_ operation: String, body: [UInt8], via caller: AWSCaller) async throws
    -> HTTPRequest
  {
    let digest = Array(
      SHA256.hash(data: Array(operation.utf8) + [0] + Array(caller.endpointDescription.utf8) + [0] + body))
    let credentials = try await caller.credentials.credentials()
    while true {
      let now = caller.clock()
      if ledger.claim(digest: digest, second: floor(now.timeIntervalSince1970)) {
        return signedRequest(operation, body: body, date: now, credentials: credentials, via: caller)
      }
      try await caller.retry.sleep(
        max(0.001, 1 - now.timeIntervalSince1970.truncatingRemainder(dividingBy: 1)))
    }
  }

  /// The signed HTTP request for `operation`.
  func signedRequest(
    _ operation: String, body: [UInt8], date: Date, credentials: AWSCredentials, via caller: AWSCaller
  ) -> HTTPRequest {
    caller.signedPost(
      headers: [
        ("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "\(Self.targetPrefix).\(operation)"),
      ], body: body, date: date, credentials: credentials)
  }

  static func interpret(_ response: HTTPResponse, endpoint: String, attempts: Int) -> Result<
    SendSSHPublicKeyResponse, InstanceConnectError
  > {
    guard (200..<300).contains(response.status) else {
      return .failure(
        .service(
          ServiceError.decode(
            status: response.status, headers: response.headers, body: response.body, endpoint: endpoint)))
    }
    guard let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] else {
      return .failure(
        .service(
          ServiceError(
            code: "MalformedResponse", message: "the answer is not JSON", status: response.status,
            requestID: response.headers["x-amzn-requestid"], endpoint: endpoint)))
    }
    let requestID = (object["RequestId"] as? String) ?? response.headers["x-amzn-requestid"] ?? ""
    let success = (object["Success"] as? Bool) ?? false
    guard success else {
      return .failure(
        .service(
          ServiceError(
            code: "Unsuccessful", message: "the service answered Success=false", status: response.status,
            requestID: requestID, endpoint: endpoint)))
    }
    var answer = SendSSHPublicKeyResponse(requestID: requestID, success: success, attempts: attempts)
    if let certificate = object["Certificate"] as? String {
      answer.certificate = certificate
      answer.serial = (object["SerialNumber"] as? NSNumber)?.uint64Value
    }
    return .success(answer)
  }

  static func describe(_ error: any Error) -> String {
    let ns = error as NSError
    if ns.domain == NSURLErrorDomain {
      switch ns.code {
      case NSURLErrorCannotConnectToHost: return "the connection was refused"
      case NSURLErrorTimedOut: return "the request timed out"
      case NSURLErrorCannotFindHost: return "the host name could not be resolved"
      case NSURLErrorNetworkConnectionLost: return "the connection was lost"
      default: return ns.localizedDescription
      }
    }
    return "\(error)"
  }
}

/// The bodies a client has signed in the current second, by digest.
// Sendable: `second` and `signed` are read and written only under `lock`.
final class SignedRequestLedger: @unchecked Sendable {
  private let lock = NSLock()
  private var second: Double = -1
  private var signed: Set<[UInt8]> = []

  /// True, and recorded, if `digest` was not signed in `second` yet. Only the latest second is
  /// kept: the clock moves forward, and requests signed in earlier seconds differ from any
  /// signed now.
  func claim(digest: [UInt8], second: Double) -> Bool {
    lock.withLock {
      if second != self.second {
        self.second = second
        signed.removeAll(keepingCapacity: true)
      }
      return signed.insert(digest).inserted
    }
  }
}
