import Foundation

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Finds AWS credentials the way the AWS CLI and SDKs do: environment, shared files, then the
/// EC2 instance role through IMDSv2.
public struct CredentialChain: Sendable {
  public var environment: [String: String]
  public var profile: String?
  /// Set false to skip the instance metadata service (it is also skipped when
  /// `AWS_EC2_METADATA_DISABLED=true`).
  public var useInstanceMetadata: Bool

  public init(
    environment: [String: String] = ProcessInfo.processInfo.environment, profile: String? = nil,
    useInstanceMetadata: Bool = true
  ) {
    self.environment = environment
    self.profile = profile
    self.useInstanceMetadata = useInstanceMetadata
  }

  var profileName: String {
    profile ?? environment["AWS_PROFILE"] ?? environment["AWS_DEFAULT_PROFILE"] ?? "default"
  }

  var home: String { environment["HOME"] ?? NSHomeDirectory() }

  var credentialsFile: String { environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials" }
  var configFile: String { environment["AWS_CONFIG_FILE"] ?? home + "/.aws/config" }

  /// Resolves credentials.
  /// - Throws: `InstanceConnectError.noCredentials` listing what was tried.
  public func resolve() async throws -> AWSCredentials {
    // An explicitly named profile takes precedence over environment keys, as in the AWS CLI.
    if profile == nil, let id = environment["AWS_ACCESS_KEY_ID"],
      let secret = environment["AWS_SECRET_ACCESS_KEY"],
      !id.isEmpty, !secret.isEmpty
    {
      return AWSCredentials(
        accessKeyID: id, secretAccessKey: secret,
        sessionToken: environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 },
        source: "environment")
    }
    if let credentials = try fromFiles() { return credentials }
    var tried = ["environment variables", "profile '\(profileName)' in \(credentialsFile) and \(configFile)"]
    if useInstanceMetadata && environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() != "true"
      && profile == nil
    {
      tried.append("the EC2 instance metadata service")
      if let credentials = await InstanceMetadata(endpoint: environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"])
        .credentials()
      {
        return credentials
      }
    }
    throw InstanceConnectError.noCredentials(tried: tried)
  }

  func fromFiles() throws -> AWSCredentials? {
    let name = profileName
    let credentials = INIFile.load(credentialsFile)?.section(name)
    let config = INIFile.load(configFile)?.section(name == "default" ? "default" : "profile \(name)")
    for section in [credentials, config].compactMap({ $0 }) {
      if let id = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] {
        return AWSCredentials(
          accessKeyID: id, secretAccessKey: secret, sessionToken: section["aws_session_token"],
          source: "profile \(name)")
      }
    }
    if profile != nil && credentials == nil && config == nil {
      throw InstanceConnectError.unknownProfile(name, files: [credentialsFile, configFile])
    }
    return nil
  }

  /// The endpoint override, as the AWS CLI reads it: the explicit one, then
  /// `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT`, `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`.
  /// Nil means AWS's regional endpoint.
  public func endpoint(explicit: String? = nil) -> String? {
    if let explicit, !explicit.isEmpty { return explicit }
    for key in ["AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT", "AWS_ENDPOINT_URL"] {
      if let value = environment[key], !value.isEmpty { return value }
    }
    let name = profileName
    return INIFile.load(configFile)?.section(name == "default" ? "default" : "profile \(name)")?[
      "endpoint_url"]
  }

  /// The region: the explicit one, then `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
  public func region(explicit: String? = nil) -> String? {
    if let explicit, !explicit.isEmpty { return explicit }
    for key in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
      if let value = environment[key], !value.isEmpty { return value }
    }
    let name = profileName
    return INIFile.load(configFile)?.section(name == "default" ? "default" : "profile \(name)")?["region"]
  }
}

/// A tolerant INI reader for the AWS shared files (`[section]`, `key = value`, `#`/`;` comments).
struct INIFile {
  var sections: [String: [String: String]] = [:]

  static func load(_ path: String) -> INIFile? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    return INIFile(text: text)
  }

  init(text: String) {
    var current: String?
    for raw in text.split(whereSeparator: \.isNewline) {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      if line.hasPrefix("[") && line.hasSuffix("]") {
        let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
        current = name.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        if sections[current!] == nil { sections[current!] = [:] }
        continue
      }
      guard let section = current, let eq = line.firstIndex(of: "=") else { continue }
      let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
      var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
      if let hash = value.range(of: " #") ?? value.range(of: " ;") {
        value = String(value[..<hash.lowerBound]).trimmingCharacters(in: .whitespaces)
      }
      sections[section]?[key] = value
    }
  }

  func section(_ name: String) -> [String: String]? { sections[name] }
}

/// IMDSv2: a session token by PUT, then the role's credentials; short timeouts so a machine
/// that is not on EC2 moves on quickly.
struct InstanceMetadata: Sendable {
  let base: String

  init(endpoint: String?) {
    var url = endpoint ?? "http://169.254.169.254"
    while url.hasSuffix("/") { url.removeLast() }
    base = url
  }

  func credentials() async -> AWSCredentials? {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.timeoutIntervalForRequest = 1
    configuration.timeoutIntervalForResource = 2
    let session = URLSession(configuration: configuration)
    defer { session.finishTasksAndInvalidate() }
    guard let tokenURL = URL(string: base + "/latest/api/token") else { return nil }
    var tokenRequest = URLRequest(url: tokenURL)
    tokenRequest.httpMethod = "PUT"
    tokenRequest.setValue("21600", forHTTPHeaderField: "X-aws-ec2-metadata-token-ttl-seconds")
    guard let (tokenData, tokenResponse) = try? await session.data(for: tokenRequest),
      (tokenResponse as? HTTPURLResponse)?.statusCode == 200
    else { return nil }
    let token = String(decoding: tokenData, as: UTF8.self)
    func get(_ path: String) async -> Data? {
      guard let url = URL(string: base + path) else { return nil }
      var request = URLRequest(url: url)
      request.setValue(token, forHTTPHeaderField: "X-aws-ec2-metadata-token")
      guard let (data, response) = try? await session.data(for: request),
        (response as? HTTPURLResponse)?.statusCode == 200
      else { return nil }
      return data
    }
    guard let roles = await get("/latest/meta-data/iam/security-credentials/"),
      let role = String(decoding: roles, as: UTF8.self).split(whereSeparator: \.isNewline).first,
      let body = await get("/latest/meta-data/iam/security-credentials/\(role)"),
      let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any],
      let id = object["AccessKeyId"] as? String, let secret = object["SecretAccessKey"] as? String
    else { return nil }
    return AWSCredentials(
      accessKeyID: id, secretAccessKey: secret, sessionToken: object["Token"] as? String,
      source: "instance role \(role)")
  }
}
