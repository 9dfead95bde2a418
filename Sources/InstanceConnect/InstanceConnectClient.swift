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
  /// How many attempts it took (throttling and server errors are retried).
  public var attempts: Int

  public init(requestID: String, success: Bool, attempts: Int) {
    self.requestID = requestID
    self.success = success
    self.attempts = attempts
  }
}

/// A client for the EC2 Instance Connect API (AWS JSON 1.1, SigV4), usable against AWS itself,
/// `sixty broker`, or any compatible endpoint. Safe to share between concurrent tasks.
public struct InstanceConnectClient: Sendable {
  let caller: AWSCaller
  let logger: Logger?
  /// Shared by every copy of this client, so no two of its requests are ever byte-identical.
  let ledger = SignedRequestLedger()

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
    caller = AWSCaller(
      service: Self.service, endpoint: endpoint ?? Self.endpoint(region: region), region: region,
      credentials: credentials, transport: transport, retry: retry, clock: clock)
    self.logger = logger
  }

  public var endpoint: URL { caller.endpoint }
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
    var w = [String: Any]()
    w["InstanceId"] = request.instanceID
    w["InstanceOSUser"] = request.osUser
    w["SSHPublicKey"] = request.publicKey
    if let zone = request.availabilityZone { w["AvailabilityZone"] = zone }
    return try await call("SendSSHPublicKey", body: w)
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
    var attempt = 0
    while true {
      attempt += 1
      let request: HTTPRequest
      do {
        request = try await signedRequestNeverSentBefore(operation, body: body)
      } catch let error as InstanceConnectError {
        throw error
      } catch {
        throw .transport(endpoint: caller.endpointDescription, message: "cancelled while waiting to sign")
      }
      let result: Result<SendSSHPublicKeyResponse, InstanceConnectError>
      do {
        let response = try await caller.transport.send(request)
        result = Self.interpret(response, endpoint: caller.endpointDescription, attempts: attempt)
      } catch {
        result = .failure(.transport(endpoint: caller.endpointDescription, message: Self.describe(error)))
      }
      switch result {
      case .success(let value): return value
      case .failure(let error):
        guard error.isRetryable, attempt < caller.retry.maxAttempts else { throw error }
        let wait = caller.retry.delay(attempt: attempt - 1)
        logger?.debug("retrying \(operation) in \(wait) s after: \(error)")
        do {
          try await caller.retry.sleep(wait)
        } catch {
          throw .transport(endpoint: caller.endpointDescription, message: "cancelled while waiting to retry")
        }
      }
    }
  }

  /// Signs the request in a second in which this client has not signed the same body yet,
  /// waiting for the next second if it has. A SigV4 signature covers the body and the time to
  /// the second, so the same body signed twice in one second is the same request, which a broker
  /// refuses as a replay. This happens when a host's key is pushed again straight after a dropped
  /// connection, and for a retry that fails fast.
  func signedRequestNeverSentBefore(_ operation: String, body: [UInt8]) async throws -> HTTPRequest {
    let digest = Array(SHA256.hash(data: Array(operation.utf8) + [0] + body))
    let credentials = try await caller.credentials.credentials()
    while true {
      let now = caller.clock()
      if ledger.claim(digest: digest, second: floor(now.timeIntervalSince1970)) {
        return signedRequest(operation, body: body, date: now, credentials: credentials)
      }
      try await caller.retry.sleep(
        max(0.001, 1 - now.timeIntervalSince1970.truncatingRemainder(dividingBy: 1)))
    }
  }

  /// The signed HTTP request for `operation`.
  func signedRequest(_ operation: String, body: [UInt8], date: Date, credentials: AWSCredentials)
    -> HTTPRequest
  {
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
    return .success(SendSSHPublicKeyResponse(requestID: requestID, success: success, attempts: attempts))
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
