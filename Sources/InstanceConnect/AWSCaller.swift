import Foundation

/// What a client of one AWS API holds, shared by the Instance Connect and EC2 clients: where the
/// API is (endpoint, region), as whom it is called (credentials), over what (transport), how
/// patiently (retry) and by which clock. It signs requests; each client keeps its own wire
/// format, retry decisions and errors.
public struct AWSCaller: Sendable {
  /// The SigV4 service name (`ec2-instance-connect`, `ec2`).
  public let service: String
  public let endpoint: URL
  public let region: String
  /// Asked for credentials before every request, so temporary ones are renewed in time.
  public let credentials: any AWSCredentialsProvider
  public let transport: any HTTPTransport
  public let retry: RetryPolicy
  public let clock: @Sendable () -> Date

  public init(
    service: String, endpoint: URL, region: String, credentials: any AWSCredentialsProvider,
    transport: any HTTPTransport, retry: RetryPolicy, clock: @escaping @Sendable () -> Date
  ) {
    self.service = service
    self.endpoint = endpoint
    self.region = region
    self.credentials = credentials
    self.transport = transport
    self.retry = retry
    self.clock = clock
  }

  /// `https://HOST.REGION.amazonaws.com` and `path` (`.amazonaws.com.cn` in China).
  public static func regionalEndpoint(_ host: String, region: String, path: String = "") -> URL {
    let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
    return URL(string: "https://\(host).\(region).\(suffix)\(path)")!
  }

  /// The endpoint as errors name it: without trailing slashes.
  public var endpointDescription: String {
    var text = endpoint.absoluteString
    while text.hasSuffix("/") { text.removeLast() }
    return text
  }

  /// A POST of `body` to the endpoint, signed at `date` with the provider's current credentials.
  /// - Throws: `InstanceConnectError` when the provider has no credentials.
  public func signedPost(headers: [(name: String, value: String)], body: [UInt8], date: Date)
    async throws(InstanceConnectError) -> HTTPRequest
  {
    signedPost(headers: headers, body: body, date: date, credentials: try await credentials.credentials())
  }

  /// A POST of `body` to the endpoint, signed at `date`. The only headers sent are `Host` and
  /// `headers`, all signed (plus what the transport adds on its own, which is not signed).
  public func signedPost(
    headers: [(name: String, value: String)], body: [UInt8], date: Date, credentials: AWSCredentials
  ) -> HTTPRequest {
    var host = endpoint.host ?? "localhost"
    if host.contains(":") { host = "[\(host)]" }
    if let port = endpoint.port,
      !(endpoint.scheme == "https" && port == 443) && !(endpoint.scheme == "http" && port == 80)
    {
      host += ":\(port)"
    }
    let path = endpoint.path.isEmpty ? "/" : endpoint.path
    var request = SigV4Request(method: "POST", path: path, headers: [("Host", host)] + headers, body: body)
    SigV4.sign(&request, credentials: credentials, region: region, service: service, date: date)
    let url = endpoint.path.isEmpty ? endpoint.appendingPathComponent("") : endpoint
    return HTTPRequest(url: url, method: "POST", headers: request.headers, body: body)
  }
}
