import Foundation
import SixtyCore

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Finds AWS credentials the way the AWS CLI does, first match wins:
/// 1. the profile named by `--profile` (only that profile: nothing else is tried);
/// 2. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
/// 3. the profile `AWS_PROFILE` names, else `default`;
/// 4. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS, CI);
/// 5. container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `FULL_URI`);
/// 6. the EC2 instance role through IMDSv2.
///
/// A profile gives credentials by (in this order) `role_arn` with `source_profile` or
/// `credential_source` (an STS AssumeRole, chained when the source has a role too), `role_arn`
/// with `web_identity_token_file`, `sso_session` / `sso_start_url` (the token cache of
/// `aws sso login`), access keys, or `credential_process`. Temporary credentials come wrapped in a
/// `RefreshingCredentials` that renews them before they expire.
public struct CredentialChain: Sendable {
  public var environment: [String: String]
  public var profile: String?
  /// Set false to skip the instance metadata service (it is also skipped when
  /// `AWS_EC2_METADATA_DISABLED=true`).
  public var useInstanceMetadata: Bool
  /// For STS, the SSO portal and container endpoints.
  public var transport: any HTTPTransport
  /// The time now: decides when temporary credentials are renewed and whether an SSO token has
  /// expired.
  public var clock: @Sendable () -> Date

  public init(
    environment: [String: String] = ProcessInfo.processInfo.environment, profile: String? = nil,
    useInstanceMetadata: Bool = true, transport: any HTTPTransport = URLSessionTransport(timeout: 10),
    clock: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.environment = environment
    self.profile = profile
    self.useInstanceMetadata = useInstanceMetadata
    self.transport = transport
    self.clock = clock
  }

  var profileName: String {
    profile ?? nonEmpty("AWS_PROFILE") ?? nonEmpty("AWS_DEFAULT_PROFILE") ?? "default"
  }

  func nonEmpty(_ key: String) -> String? { environment[key].flatMap { $0.isEmpty ? nil : $0 } }

  var home: String { environment["HOME"] ?? NSHomeDirectory() }

  var credentialsFile: String { nonEmpty("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials" }
  var configFile: String { nonEmpty("AWS_CONFIG_FILE") ?? home + "/.aws/config" }

  var shared: SharedConfig { SharedConfig(credentialsFile: credentialsFile, configFile: configFile) }

  /// Checks that a profile named by `--profile` or `AWS_PROFILE` exists, so that a typo is
  /// reported before anything else is read or contacted.
  /// - Throws: `InstanceConnectError.unknownProfile`.
  public func checkProfile() throws(InstanceConnectError) {
    guard profile != nil || nonEmpty("AWS_PROFILE") != nil || nonEmpty("AWS_DEFAULT_PROFILE") != nil else {
      return
    }
    if profile == nil && nonEmpty("AWS_ACCESS_KEY_ID") != nil && nonEmpty("AWS_SECRET_ACCESS_KEY") != nil {
      return
    }
    let config = shared
    if config.profiles[profileName] == nil {
      throw .unknownProfile(profileName, files: config.files)
    }
  }

  /// Resolves credentials once.
  /// - Throws: `InstanceConnectError`: no credentials, an unknown profile, or a source that failed.
  public func resolve() async throws(InstanceConnectError) -> AWSCredentials {
    try await provider().credentials()
  }

  /// The provider every signed call asks: long-term keys as they are, temporary ones renewed
  /// before they expire. Nothing is fetched yet, except that the instance metadata service is
  /// asked once to learn whether it is there.
  /// - Throws: `InstanceConnectError` for an unknown or unusable profile, or no credentials.
  public func provider() async throws(InstanceConnectError) -> any AWSCredentialsProvider {
    let config = shared
    if let profile {
      guard config.profiles[profile] != nil else { throw .unknownProfile(profile, files: config.files) }
      guard let provider = try profileProvider(profile, config: config, chain: []) else {
        throw noCredentialsIn(profile, config: config)
      }
      return provider
    }
    if let id = nonEmpty("AWS_ACCESS_KEY_ID"), let secret = nonEmpty("AWS_SECRET_ACCESS_KEY") {
      return AWSCredentials(
        accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty("AWS_SESSION_TOKEN"),
        source: "environment")
    }
    let name = profileName
    var tried = ["environment variables"]
    if config.profiles[name] != nil {
      if let provider = try profileProvider(name, config: config, chain: []) { return provider }
    } else if name != "default" {
      throw .unknownProfile(name, files: config.files)
    }
    tried.append("profile \(SharedConfig.name(name)) in \(credentialsFile) and \(configFile)")
    if let tokenFile = nonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE") {
      guard let role = nonEmpty("AWS_ROLE_ARN") else {
        throw .credentials(
          "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not; set the role to assume.")
      }
      return webIdentity(
        role: role, tokenFile: tokenFile, sessionName: nonEmpty("AWS_ROLE_SESSION_NAME"), duration: nil,
        origin: "AWS_WEB_IDENTITY_TOKEN_FILE", profile: nil, config: config)
    }
    tried.append("web identity (AWS_WEB_IDENTITY_TOKEN_FILE)")
    if let provider = try container() { return provider }
    tried.append("container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / FULL_URI)")
    if useInstanceMetadata && environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() != "true" {
      tried.append("the EC2 instance metadata service")
      let provider = instanceMetadata()
      if (try? await provider.credentials()) != nil { return provider }
    }
    throw .noCredentials(tried: tried)
  }

  func noCredentialsIn(_ name: String, config: SharedConfig) -> InstanceConnectError {
    .credentials(
      "The AWS profile \(SharedConfig.name(name)) in \(config.location) gives no credentials; expected aws_access_key_id and aws_secret_access_key, role_arn with source_profile or credential_source, credential_process, sso_session (or sso_start_url) with sso_account_id and sso_role_name, or role_arn with web_identity_token_file."
    )
  }

  /// A profile's credentials, or nil when it sets none. `chain` holds the profiles that led here
  /// through `source_profile`.
  func profileProvider(_ name: String, config: SharedConfig, chain: [String]) throws(InstanceConnectError)
    -> (any AWSCredentialsProvider)?
  {
    guard let values = config.profiles[name] else {
      let from = chain.last.map { " (the source_profile of \(SharedConfig.name($0)))" } ?? ""
      throw .credentials(
        "The AWS profile \(SharedConfig.name(name))\(from) is not in \(config.configFile) or \(config.credentialsFile)."
      )
    }
    let quoted = SharedConfig.name(name)
    func value(_ key: String) -> String? { values[key].flatMap { $0.isEmpty ? nil : $0 } }
    let staticKeys: AWSCredentials? = {
      guard let id = value("aws_access_key_id"), let secret = value("aws_secret_access_key") else {
        return nil
      }
      return AWSCredentials(
        accessKeyID: id, secretAccessKey: secret, sessionToken: value("aws_session_token"),
        source: "profile \(name)")
    }()
    if let role = value("role_arn") {
      if value("mfa_serial") != nil {
        throw .credentials(
          "The AWS profile \(quoted) has mfa_serial, and Sixty cannot ask for an MFA code without a terminal: use a profile without mfa_serial, or credentials from aws sts get-session-token in the environment."
        )
      }
      let duration = try durationSeconds(values, profile: name, config: config)
      let sessionName = value("role_session_name")
      if let tokenFile = value("web_identity_token_file") {
        return webIdentity(
          role: role, tokenFile: tokenFile, sessionName: sessionName, duration: duration,
          origin: "web_identity_token_file of the AWS profile \(quoted)", profile: name, config: config)
      }
      let source: any AWSCredentialsProvider
      if let sourceName = value("source_profile") {
        if sourceName == name, let staticKeys {
          // A profile may take its own keys to assume its role, as in the AWS CLI.
          source = staticKeys
        } else if chain.contains(sourceName) || sourceName == name {
          let loop = (chain + [name, sourceName]).map { SharedConfig.name($0) }.joined(separator: " → ")
          throw .credentials(
            "The AWS profiles' source_profile settings make a loop (\(loop)) in \(config.location); a source_profile must lead to a profile with credentials."
          )
        } else if chain.count >= 8 {
          throw .credentials(
            "The AWS profile \(quoted) is more than 8 source_profile steps from credentials; shorten the role chain."
          )
        } else {
          guard let found = try profileProvider(sourceName, config: config, chain: chain + [name]) else {
            throw .credentials(
              "The AWS profile \(SharedConfig.name(sourceName)), source_profile of \(quoted), gives no credentials; expected access keys, a role, credential_process or SSO settings in it."
            )
          }
          source = found
        }
      } else if let credentialSource = value("credential_source") {
        source = try self.credentialSource(credentialSource, profile: name)
      } else {
        throw .credentials(
          "The AWS profile \(quoted) has role_arn but neither source_profile nor credential_source; expected one of them to say whose credentials assume the role."
        )
      }
      // Every hop of a role chain calls STS as the AWS CLI does: with the region and endpoint of
      // the profile being resolved, not of its sources.
      let sts = stsClient(profile: chain.first ?? name, config: config)
      let request = STSClient.RoleRequest(
        roleARN: role, sessionName: sessionName ?? defaultSessionName(), externalID: value("external_id"),
        durationSeconds: duration, profile: name)
      let clock = self.clock
      return RefreshingCredentials(clock: clock) { () async throws(InstanceConnectError) -> AWSCredentials in
        let sourceCredentials = try await source.credentials()
        return try await sts.assumeRole(request, as: sourceCredentials, now: clock())
      }
    }
    if value("web_identity_token_file") != nil {
      throw .credentials(
        "The AWS profile \(quoted) has web_identity_token_file but no role_arn; expected the role to assume.")
    }
    if value("sso_session") != nil || value("sso_start_url") != nil || value("sso_account_id") != nil {
      let sso = try ssoSource(values, profile: name, config: config)
      return RefreshingCredentials(clock: clock) { () async throws(InstanceConnectError) -> AWSCredentials in
        try await sso.fetch()
      }
    }
    if let staticKeys { return staticKeys }
    if let command = value("credential_process") {
      let process = CredentialProcess(command: command, profile: name)
      return RefreshingCredentials(clock: clock) { () async throws(InstanceConnectError) -> AWSCredentials in
        try await process.fetch()
      }
    }
    return nil
  }

  func durationSeconds(_ values: [String: String], profile: String, config: SharedConfig)
    throws(InstanceConnectError) -> Int?
  {
    guard let text = values["duration_seconds"], !text.isEmpty else { return nil }
    guard let seconds = Int(text), (900...43_200).contains(seconds) else {
      throw .credentials(
        "The duration_seconds \(SafeText.quoted(text, limit: 20)) of the AWS profile \(SharedConfig.name(profile)) in \(config.configFile) is not valid; expected a number of seconds from 900 to 43200."
      )
    }
    return seconds
  }

  func defaultSessionName() -> String { "sixty-\(Int(clock().timeIntervalSince1970))" }

  /// `credential_source`: whose credentials assume the role.
  func credentialSource(_ name: String, profile: String) throws(InstanceConnectError)
    -> any AWSCredentialsProvider
  {
    switch name {
    case "Environment":
      guard let id = nonEmpty("AWS_ACCESS_KEY_ID"), let secret = nonEmpty("AWS_SECRET_ACCESS_KEY") else {
        throw .credentials(
          "The AWS profile \(SharedConfig.name(profile)) has credential_source = Environment, but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set."
        )
      }
      return AWSCredentials(
        accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty("AWS_SESSION_TOKEN"),
        source: "environment")
    case "Ec2InstanceMetadata": return instanceMetadata()
    case "EcsContainer":
      guard let provider = try container() else {
        throw .credentials(
          "The AWS profile \(SharedConfig.name(profile)) has credential_source = EcsContainer, but neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set."
        )
      }
      return provider
    default:
      throw .credentials(
        "The credential_source \(SafeText.quoted(name, limit: 40)) of the AWS profile \(SharedConfig.name(profile)) is not known; expected Environment, Ec2InstanceMetadata or EcsContainer."
      )
    }
  }

  func container() throws(InstanceConnectError) -> (any AWSCredentialsProvider)? {
    guard let url = try ContainerCredentials.endpoint(environment) else { return nil }
    let source = ContainerCredentials(url: url, environment: environment, transport: transport)
    return RefreshingCredentials(clock: clock) { () async throws(InstanceConnectError) -> AWSCredentials in
      try await source.fetch()
    }
  }

  func instanceMetadata() -> any AWSCredentialsProvider {
    let service = InstanceMetadata(endpoint: environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"])
    return RefreshingCredentials(clock: clock) { () async throws(InstanceConnectError) -> AWSCredentials in
      guard let credentials = await service.credentials() else {
        throw .credentials(
          "The EC2 instance metadata service at \(service.base) gave no role credentials; is an instance profile attached?"
        )
      }
      return credentials
    }
  }

  /// STS as a profile reaches it: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the profile's
  /// services section or `endpoint_url`, else the regional endpoint of the profile's region.
  func stsClient(profile: String?, config: SharedConfig) -> STSClient {
    let region =
      nonEmpty("AWS_REGION") ?? nonEmpty("AWS_DEFAULT_REGION")
      ?? profile.flatMap { config.profiles[$0]?["region"] }.flatMap { $0.isEmpty ? nil : $0 }
    let override =
      nonEmpty("AWS_ENDPOINT_URL_STS") ?? nonEmpty("AWS_ENDPOINT_URL")
      ?? profile.flatMap { config.endpoint(profile: $0, service: "sts") }
    let endpoint = override.flatMap(URL.init(string:)) ?? STSClient.endpoint(region: region)
    return STSClient(endpoint: endpoint, region: region ?? "us-east-1", transport: transport)
  }

  func webIdentity(
    role: String, tokenFile: String, sessionName: String?, duration: Int?, origin: String, profile: String?,
    config: SharedConfig
  ) -> any AWSCredentialsProvider {
    let sts = stsClient(profile: profile, config: config)
    let request = STSClient.RoleRequest(
      roleARN: role, sessionName: sessionName ?? defaultSessionName(), externalID: nil,
      durationSeconds: duration,
      profile: profile ?? "")
    return RefreshingCredentials(clock: clock) { () async throws(InstanceConnectError) -> AWSCredentials in
      // Read at every renewal: EKS and CI rotate the token file.
      guard let handle = FileHandle(forReadingAtPath: tokenFile) else {
        throw .credentials(
          "The web identity token file \(SafeText.quoted(tokenFile)) (\(origin)) cannot be read.")
      }
      let data = try? handle.read(upToCount: 64 * 1024)
      try? handle.close()
      let token = String(decoding: data ?? Data(), as: UTF8.self).trimmingCharacters(
        in: .whitespacesAndNewlines)
      guard !token.isEmpty else {
        throw .credentials("The web identity token file \(SafeText.quoted(tokenFile)) (\(origin)) is empty.")
      }
      return try await sts.assumeRoleWithWebIdentity(request, token: token, origin: origin)
    }
  }

  func ssoSource(_ values: [String: String], profile: String, config: SharedConfig)
    throws(InstanceConnectError)
    -> SSOCredentials
  {
    let quoted = SharedConfig.name(profile)
    var settings = values
    let session = values["sso_session"].flatMap { $0.isEmpty ? nil : $0 }
    if let session {
      guard let section = config.ssoSessions[session] else {
        throw .credentials(
          "The AWS profile \(quoted) names sso_session \(SafeText.quoted(session, limit: 64)), which has no [sso-session \(SafeText.escaped(session, limit: 64))] section in \(config.configFile)."
        )
      }
      settings.merge(section) { own, _ in own }
    }
    var missing: [String] = []
    for key in ["sso_start_url", "sso_region", "sso_account_id", "sso_role_name"]
    where settings[key]?.isEmpty ?? true {
      missing.append(key)
    }
    guard missing.isEmpty else {
      throw .credentials(
        "The AWS profile \(quoted) uses SSO but lacks \(missing.joined(separator: ", ")) (in the profile or its sso-session section) in \(config.configFile)."
      )
    }
    let region = settings["sso_region"]!
    let override = nonEmpty("AWS_ENDPOINT_URL_SSO") ?? config.endpoint(profile: profile, service: "sso")
    return SSOCredentials(
      profile: profile, session: session, startURL: settings["sso_start_url"]!, ssoRegion: region,
      accountID: settings["sso_account_id"]!, roleName: settings["sso_role_name"]!,
      cacheDirectory: home + "/.aws/sso/cache",
      endpoint: override.flatMap(URL.init(string:)) ?? SSOCredentials.portal(region: region),
      transport: transport,
      clock: clock)
  }

  /// The endpoint override, as the AWS CLI reads it: the explicit one, then
  /// `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT`, `AWS_ENDPOINT_URL`, then the profile's `endpoint_url`.
  /// Nil means AWS's regional endpoint.
  public func endpoint(explicit: String? = nil) -> String? {
    endpoint(explicit: explicit, service: "ec2_instance_connect")
  }

  /// The endpoint of `service` (the AWS CLI's key: `ec2`, `ec2_instance_connect`, `sts`): the explicit
  /// one, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the profile's services section or
  /// `endpoint_url`.
  public func endpoint(explicit: String?, service: String) -> String? {
    if let explicit, !explicit.isEmpty { return explicit }
    for key in ["AWS_ENDPOINT_URL_" + service.uppercased(), "AWS_ENDPOINT_URL"] {
      if let value = nonEmpty(key) { return value }
    }
    return shared.endpoint(profile: profileName, service: service)
  }

  /// Where `endpoint(explicit:service:)` found its answer, as a message names it: the explicit
  /// value's `explicitName`, the environment variable, or the profile's `endpoint_url`.
  public func endpointSource(explicit: String?, explicitName: String, service: String) -> String {
    if let explicit, !explicit.isEmpty { return explicitName }
    for key in ["AWS_ENDPOINT_URL_" + service.uppercased(), "AWS_ENDPOINT_URL"] where nonEmpty(key) != nil {
      return key
    }
    return "the endpoint_url of the AWS profile \(SharedConfig.name(profileName))"
  }

  /// The region: the explicit one, then `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
  public func region(explicit: String? = nil) -> String? {
    if let explicit, !explicit.isEmpty { return explicit }
    for key in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
      if let value = nonEmpty(key) { return value }
    }
    return shared.profiles[profileName]?["region"].flatMap { $0.isEmpty ? nil : $0 }
  }
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
      let body = await get("/latest/meta-data/iam/security-credentials/\(role)")
    else { return nil }
    return ContainerCredentials.parse(Array(body), source: "instance role \(role)")
  }
}
