import Foundation
import SixtyCore

/// The two AWS STS calls a profile can need: `AssumeRole` (signed with SigV4 by the source
/// credentials) and `AssumeRoleWithWebIdentity` (unsigned: the token is the proof). Query API,
/// form-encoded POST, XML answers.
struct STSClient: Sendable {
  let endpoint: URL
  let region: String
  let transport: any HTTPTransport
  static let version = "2011-06-15"
  /// STS answers are a few kilobytes; more is not read.
  static let maxAnswer = 64 * 1024

  /// `https://sts.REGION.amazonaws.com`, or the global endpoint when no region is known.
  static func endpoint(region: String?) -> URL {
    guard let region else { return URL(string: "https://sts.amazonaws.com")! }
    return AWSCaller.regionalEndpoint("sts", region: region, path: "/")
  }

  struct RoleRequest: Sendable {
    var roleARN: String
    var sessionName: String
    var externalID: String?
    var durationSeconds: Int?
    /// Names the profile in errors and in the credentials' source.
    var profile: String
  }

  func assumeRole(_ request: RoleRequest, as credentials: AWSCredentials, now: Date)
    async throws(InstanceConnectError) -> AWSCredentials
  {
    var parameters = [
      ("Action", "AssumeRole"), ("Version", Self.version), ("RoleArn", request.roleARN),
      ("RoleSessionName", request.sessionName),
    ]
    if let duration = request.durationSeconds { parameters.append(("DurationSeconds", String(duration))) }
    if let external = request.externalID { parameters.append(("ExternalId", external)) }
    let caller = AWSCaller(
      service: "sts", endpoint: endpoint, region: region, credentials: credentials, transport: transport,
      retry: .none, clock: { now })
    let http = caller.signedPost(
      headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
      body: Self.form(parameters),
      date: now, credentials: credentials)
    return try await send(
      http, action: "AssumeRole",
      context:
        "AssumeRole of \(SafeText.escaped(request.roleARN, limit: 200)) for the AWS profile \(SharedConfig.name(request.profile))",
      source: "role \(request.roleARN) (profile \(request.profile))")
  }

  func assumeRoleWithWebIdentity(_ request: RoleRequest, token: String, origin: String)
    async throws(InstanceConnectError) -> AWSCredentials
  {
    var parameters = [
      ("Action", "AssumeRoleWithWebIdentity"), ("Version", Self.version), ("RoleArn", request.roleARN),
      ("RoleSessionName", request.sessionName), ("WebIdentityToken", token),
    ]
    if let duration = request.durationSeconds { parameters.append(("DurationSeconds", String(duration))) }
    let url = endpoint.path.isEmpty ? endpoint.appendingPathComponent("") : endpoint
    let http = HTTPRequest(
      url: url, method: "POST",
      headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
      body: Self.form(parameters))
    return try await send(
      http, action: "AssumeRoleWithWebIdentity",
      context: "AssumeRoleWithWebIdentity of \(SafeText.escaped(request.roleARN, limit: 200)) (\(origin))",
      source: "web identity role \(request.roleARN)")
  }

  static func form(_ parameters: [(String, String)]) -> [UInt8] {
    Array(
      parameters.map { "\(SigV4.uriEncode(Array($0.0.utf8)))=\(SigV4.uriEncode(Array($0.1.utf8)))" }
        .joined(separator: "&").utf8)
  }

  var endpointDescription: String {
    var text = endpoint.absoluteString
    while text.hasSuffix("/") { text.removeLast() }
    return text
  }

  func send(_ request: HTTPRequest, action: String, context: String, source: String)
    async throws(InstanceConnectError) -> AWSCredentials
  {
    let response: HTTPResponse
    do {
      response = try await transport.send(request)
    } catch {
      throw .transport(
        endpoint: endpointDescription, message: "\(action): \(InstanceConnectClient.describe(error))")
    }
    guard (200..<300).contains(response.status) else {
      throw .credentialService(
        context: context,
        ServiceError.decode(
          status: response.status, headers: response.headers, body: response.body,
          endpoint: endpointDescription))
    }
    let text = String(decoding: response.body.prefix(Self.maxAnswer), as: UTF8.self)
    guard let id = ServiceError.xmlElement("AccessKeyId", in: text),
      let secret = ServiceError.xmlElement("SecretAccessKey", in: text),
      let token = ServiceError.xmlElement("SessionToken", in: text),
      ServiceError.token(id) != nil, !secret.isEmpty
    else {
      throw .credentials(
        "\(context): the answer of \(endpointDescription) has no Credentials (AccessKeyId, SecretAccessKey, SessionToken); expected an \(action)Response."
      )
    }
    let expiration = ServiceError.xmlElement("Expiration", in: text).flatMap(AWSTime.parse)
    return AWSCredentials(
      accessKeyID: id, secretAccessKey: secret, sessionToken: token, source: source, expiration: expiration)
  }
}

/// Times as AWS writes them: ISO 8601 in UTC with or without fractional seconds
/// (`2026-12-05T08:00:00Z`, `2026-12-05T08:00:00.123Z`, `2026-12-05T08:00:00+00:00`), and the SSO
/// cache's `2026-12-05T08:00:00UTC`.
enum AWSTime {
  static func parse(_ text: String) -> Date? {
    var value = text.trimmingCharacters(in: .whitespaces)
    guard value.utf8.count <= 40, value.unicodeScalars.allSatisfy(\.isASCII) else { return nil }
    if value.hasSuffix("UTC") { value = String(value.dropLast(3)) + "Z" }
    // Fractional seconds: dropped (a credential's expiry needs no more than seconds).
    if let dot = value.firstIndex(of: ".") {
      var end = value.index(after: dot)
      while end < value.endIndex, value[end].isASCII, value[end].isNumber { end = value.index(after: end) }
      value = String(value[..<dot]) + value[end...]
    }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: value)
  }
}
