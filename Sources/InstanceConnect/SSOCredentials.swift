import Crypto
import Foundation
import SixtyCore

/// IAM Identity Center (SSO): the access token `aws sso login` left in `~/.aws/sso/cache`, traded
/// at the SSO portal for a role's credentials (`GET /federation/credentials`). Sixty never logs in
/// itself: an expired or missing token is reported with the command that renews it.
struct SSOCredentials: Sendable {
  var profile: String
  /// `sso_session` name, or nil for a legacy profile with `sso_start_url` of its own.
  var session: String?
  var startURL: String
  var ssoRegion: String
  var accountID: String
  var roleName: String
  var cacheDirectory: String
  /// The portal: `AWS_ENDPOINT_URL_SSO`, the profile's, else `https://portal.sso.REGION.amazonaws.com`.
  var endpoint: URL
  var transport: any HTTPTransport
  var clock: @Sendable () -> Date

  static func portal(region: String) -> URL {
    AWSCaller.regionalEndpoint("portal.sso", region: region)
  }

  /// The cache file: the SHA-1 of the session name (or, for a legacy profile, of the start URL)
  /// in lowercase hex, `.json`.
  static func cacheFile(directory: String, key: String) -> String {
    let digest = Insecure.SHA1.hash(data: Array(key.utf8))
    return directory + "/" + digest.map { String(format: "%02x", $0) }.joined() + ".json"
  }

  var login: String { "run aws sso login --profile \(SafeText.escaped(profile, limit: 64))" }

  func accessToken() throws(InstanceConnectError) -> String {
    let path = Self.cacheFile(directory: cacheDirectory, key: session ?? startURL)
    let name = SharedConfig.name(profile)
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw .credentials(
        "The AWS profile \(name) uses SSO, but there is no token for it in \(path); \(login).")
    }
    defer { try? handle.close() }
    guard let data = try? handle.read(upToCount: 256 * 1024),
      let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
      let token = object["accessToken"] as? String, !token.isEmpty
    else {
      throw .credentials(
        "The SSO token cache \(path) of the AWS profile \(name) has no accessToken; \(login).")
    }
    guard let text = object["expiresAt"] as? String, let expiry = AWSTime.parse(text) else {
      throw .credentials(
        "The SSO token cache \(path) of the AWS profile \(name) has no valid expiresAt; \(login).")
    }
    guard expiry > clock() else {
      throw .credentials(
        "The SSO token of the AWS profile \(name) expired at \(text.prefix(40)) (in \(path)); \(login).")
    }
    return token
  }

  func fetch() async throws(InstanceConnectError) -> AWSCredentials {
    let token = try accessToken()
    var components = URLComponents(url: endpoint, resolvingAgainstBaseURL: false)
    var path = components?.path ?? ""
    while path.hasSuffix("/") { path.removeLast() }
    components?.path = path + "/federation/credentials"
    components?.percentEncodedQuery =
      "account_id=\(SigV4.uriEncode(Array(accountID.utf8)))&role_name=\(SigV4.uriEncode(Array(roleName.utf8)))"
    var description = endpoint.absoluteString
    while description.hasSuffix("/") { description.removeLast() }
    guard let url = components?.url else {
      throw .credentials("The SSO portal endpoint \(SafeText.quoted(description)) is not a valid URL.")
    }
    let context =
      "GetRoleCredentials of role \(SafeText.quoted(roleName, limit: 64)) in account \(SafeText.quoted(accountID, limit: 20)) for the AWS profile \(SharedConfig.name(profile))"
    let response: HTTPResponse
    do {
      response = try await transport.send(
        HTTPRequest(url: url, method: "GET", headers: [("x-amz-sso_bearer_token", token)], body: []))
    } catch {
      throw .transport(
        endpoint: description, message: "GetRoleCredentials: \(InstanceConnectClient.describe(error))")
    }
    guard (200..<300).contains(response.status) else {
      let error = ServiceError.decode(
        status: response.status, headers: response.headers, body: response.body, endpoint: description)
      if error.code == "UnauthorizedException" || response.status == 401 {
        throw .credentials(
          "\(context) was refused: \(error.answer); the SSO token is no longer valid: \(login).")
      }
      throw .credentialService(context: context, error)
    }
    guard
      let object = (try? JSONSerialization.jsonObject(with: Data(response.body.prefix(64 * 1024))))
        as? [String: Any],
      let role = object["roleCredentials"] as? [String: Any],
      let id = role["accessKeyId"] as? String, let secret = role["secretAccessKey"] as? String,
      ServiceError.token(id) != nil, !secret.isEmpty
    else {
      throw .credentials("\(context): the answer of \(description) has no roleCredentials.")
    }
    let expiration = (role["expiration"] as? NSNumber).map {
      Date(timeIntervalSince1970: $0.doubleValue / 1000)
    }
    return AWSCredentials(
      accessKeyID: id, secretAccessKey: secret, sessionToken: role["sessionToken"] as? String,
      source: "SSO role \(roleName) (profile \(profile))", expiration: expiration)
  }
}

/// Container credentials (ECS tasks, EKS Pod Identity, CodeBuild): a GET of
/// `http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or of
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` (https, or http to a loopback or the container agent's
/// address only), with `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)` as the Authorization header.
struct ContainerCredentials: Sendable {
  var url: URL
  var environment: [String: String]
  var transport: any HTTPTransport

  /// The container endpoint the environment names; nil when it names none.
  /// - Throws: when FULL_URI is plain http to a host that is not allowed.
  static func endpoint(_ environment: [String: String]) throws(InstanceConnectError) -> URL? {
    if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !relative.isEmpty {
      guard relative.hasPrefix("/"), let url = URL(string: "http://169.254.170.2" + relative) else {
        throw .credentials(
          "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \(SafeText.quoted(relative)) is not a path; expected one starting with /."
        )
      }
      return url
    }
    guard let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"], !full.isEmpty else { return nil }
    guard let url = URL(string: full), let scheme = url.scheme, let host = url.host else {
      throw .credentials("AWS_CONTAINER_CREDENTIALS_FULL_URI \(SafeText.quoted(full)) is not a URL.")
    }
    let allowedHTTP: Set<String> = [
      "localhost", "127.0.0.1", "::1", "[::1]", "169.254.170.2", "169.254.170.23", "fd00:ec2::23",
      "[fd00:ec2::23]",
    ]
    guard scheme == "https" || (scheme == "http" && (allowedHTTP.contains(host) || host.hasPrefix("127.")))
    else {
      throw .credentials(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI \(SafeText.quoted(full)) must be https, or http to a loopback address or the container agent (169.254.170.2, 169.254.170.23)."
      )
    }
    return url
  }

  func fetch() async throws(InstanceConnectError) -> AWSCredentials {
    var headers: [(name: String, value: String)] = []
    if let file = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], !file.isEmpty {
      guard let handle = FileHandle(forReadingAtPath: file), let data = try? handle.read(upToCount: 16 * 1024)
      else {
        throw .credentials("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(SafeText.quoted(file)) cannot be read.")
      }
      try? handle.close()
      headers.append(
        (
          "Authorization",
          String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        ))
    } else if let token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"], !token.isEmpty {
      headers.append(("Authorization", token))
    }
    if let value = headers.first?.value, value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) {
      throw .credentials(
        "The container authorization token contains a line break; it cannot be sent as a header.")
    }
    let description = url.absoluteString
    let response: HTTPResponse
    do {
      response = try await transport.send(HTTPRequest(url: url, method: "GET", headers: headers, body: []))
    } catch {
      throw .transport(endpoint: description, message: InstanceConnectClient.describe(error))
    }
    guard (200..<300).contains(response.status) else {
      throw .credentialService(
        context: "The container credentials request",
        ServiceError.decode(
          status: response.status, headers: response.headers, body: response.body, endpoint: description))
    }
    guard let credentials = Self.parse(response.body, source: "container credentials") else {
      throw .credentials(
        "The container credentials endpoint \(description) answered without AccessKeyId and SecretAccessKey.")
    }
    return credentials
  }

  /// `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}`: the container and instance
  /// metadata format.
  static func parse(_ body: [UInt8], source: String) -> AWSCredentials? {
    guard
      let object = (try? JSONSerialization.jsonObject(with: Data(body.prefix(64 * 1024)))) as? [String: Any],
      let id = object["AccessKeyId"] as? String, let secret = object["SecretAccessKey"] as? String,
      !id.isEmpty, !secret.isEmpty
    else { return nil }
    return AWSCredentials(
      accessKeyID: id, secretAccessKey: secret, sessionToken: object["Token"] as? String, source: source,
      expiration: (object["Expiration"] as? String).flatMap(AWSTime.parse))
  }
}
