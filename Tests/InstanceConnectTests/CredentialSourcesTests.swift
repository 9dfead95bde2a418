import Foundation
import InstanceConnect
import Synchronization
import Testing

/// A clock the test moves by hand.
final class ManualClock: Sendable {
  let now = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
  func advance(_ seconds: TimeInterval) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
  var read: @Sendable () -> Date { { self.now.withLock { $0 } } }
}

/// A directory with AWS config files, removed at the end.
struct AWSFiles {
  let directory: String
  var environment: [String: String]

  init(config: String, credentials: String = "") throws {
    directory =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-aws-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(
      atPath: directory + "/.aws/sso/cache", withIntermediateDirectories: true)
    try config.write(toFile: directory + "/.aws/config", atomically: true, encoding: .utf8)
    try credentials.write(toFile: directory + "/.aws/credentials", atomically: true, encoding: .utf8)
    environment = ["HOME": directory, "AWS_EC2_METADATA_DISABLED": "true", "PATH": "/usr/bin:/bin"]
  }

  func write(_ text: String, to name: String, mode: Int = 0o600) throws -> String {
    let path = directory + "/" + name
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    return path
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

func stsAnswer(_ action: String, id: String, expiration: String = "2027-01-15T09:00:00Z") -> Result<
  HTTPResponse, any Error
> {
  json(
    200,
    """
    <\(action)Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><\(action)Result><Credentials>\
    <AccessKeyId>\(id)</AccessKeyId><SecretAccessKey>secret-\(id)</SecretAccessKey>\
    <SessionToken>token-\(id)</SessionToken><Expiration>\(expiration)</Expiration></Credentials>\
    </\(action)Result></\(action)Response>
    """)
}

func form(_ request: HTTPRequest) -> [String: String] {
  var values: [String: String] = [:]
  for pair in String(decoding: request.body, as: UTF8.self).split(separator: "&") {
    let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? "" }
    if parts.count == 2 { values[parts[0]] = parts[1] }
  }
  return values
}

func header(_ request: HTTPRequest, _ name: String) -> String? {
  request.headers.first { $0.name.lowercased() == name.lowercased() }?.value
}

@Suite struct RefreshingCredentialsTests {
  @Test func renewsFiveMinutesBeforeExpirationAndNotBefore() async throws {
    let clock = ManualClock()
    let fetches = Mutex(0)
    let provider = RefreshingCredentials(clock: clock.read) {
      () async throws(InstanceConnectError) -> AWSCredentials in
      let n = fetches.withLock {
        $0 += 1
        return $0
      }
      return AWSCredentials(
        accessKeyID: "ASIA\(n)", secretAccessKey: "s", sessionToken: "t", source: "test",
        expiration: clock.read().addingTimeInterval(3600))
    }
    #expect(try await provider.credentials().accessKeyID == "ASIA1")
    clock.advance(3600 - 301)
    #expect(try await provider.credentials().accessKeyID == "ASIA1")
    clock.advance(2)  // 299 s before expiry: renewed
    #expect(try await provider.credentials().accessKeyID == "ASIA2")
    #expect(fetches.withLock { $0 } == 2)
  }

  @Test func concurrentCallersShareOneFetch() async throws {
    let fetches = Mutex(0)
    let provider = RefreshingCredentials { () async throws(InstanceConnectError) -> AWSCredentials in
      fetches.withLock { $0 += 1 }
      try? await Task.sleep(nanoseconds: 20_000_000)
      return AWSCredentials(accessKeyID: "ASIA", secretAccessKey: "s")
    }
    try await withThrowingTaskGroup(of: String.self) { group in
      for _ in 0..<50 { group.addTask { try await provider.credentials().accessKeyID } }
      for try await id in group { #expect(id == "ASIA") }
    }
    #expect(fetches.withLock { $0 } == 1)
  }

  @Test func everyPushAsksTheProviderAndSignsWithTheSessionToken() async throws {
    let clock = ManualClock()
    let fetches = Mutex(0)
    let provider = RefreshingCredentials(clock: clock.read) {
      () async throws(InstanceConnectError) -> AWSCredentials in
      let n = fetches.withLock {
        $0 += 1
        return $0
      }
      return AWSCredentials(
        accessKeyID: "ASIAKEY\(n)", secretAccessKey: "secret\(n)", sessionToken: "session\(n)",
        expiration: clock.read().addingTimeInterval(900))
    }
    let ok = json(200, #"{"RequestId":"r","Success":true}"#)
    let transport = FakeTransport([ok, ok])
    let client = InstanceConnectClient(
      region: "us-east-1", credentials: provider, endpoint: URL(string: "http://127.0.0.1:9"),
      transport: transport,
      retry: .none, clock: clock.read)
    let request = SendSSHPublicKeyRequest(
      instanceID: "i-0123456789abcdef0", osUser: "ec2-user",
      publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVz test")
    _ = try await client.sendSSHPublicKey(request)
    clock.advance(700)  // 200 s left: renewed before the next push
    _ = try await client.sendSSHPublicKey(request)
    #expect(transport.sent.count == 2)
    #expect(header(transport.sent[0], "Authorization")?.contains("Credential=ASIAKEY1/") == true)
    #expect(header(transport.sent[0], "X-Amz-Security-Token") == "session1")
    #expect(header(transport.sent[1], "Authorization")?.contains("Credential=ASIAKEY2/") == true)
    #expect(header(transport.sent[1], "X-Amz-Security-Token") == "session2")
    #expect(header(transport.sent[1], "Authorization")?.contains("x-amz-security-token") == true)
  }
}

@Suite struct ProfileChainTests {
  @Test func aMissingProfileIsNamedWithTheFiles() async throws {
    let files = try AWSFiles(config: "[profile real]\nregion = eu-west-1\n")
    defer { files.remove() }
    let chain = CredentialChain(environment: files.environment, profile: "x")
    #expect(throws: InstanceConnectError.self) { try chain.checkProfile() }
    do {
      _ = try await chain.provider()
      Issue.record("expected an error")
    } catch {
      #expect(
        error.description
          == "The AWS profile 'x' is not in \(files.directory)/.aws/config or \(files.directory)/.aws/credentials."
      )
    }
    // AWS_PROFILE naming a missing profile is an error too, not a silent fall-through.
    var env = files.environment
    env["AWS_PROFILE"] = "typo"
    #expect(throws: InstanceConnectError.self) { try CredentialChain(environment: env).checkProfile() }
  }

  @Test func sourceProfileLoopsAreReported() async throws {
    let files = try AWSFiles(
      config: """
        [profile a]
        role_arn = arn:aws:iam::123456789012:role/a
        source_profile = b
        [profile b]
        role_arn = arn:aws:iam::123456789012:role/b
        source_profile = a
        [profile self]
        role_arn = arn:aws:iam::123456789012:role/self
        source_profile = self
        """)
    defer { files.remove() }
    for (profile, loop) in [("a", "'a' → 'b' → 'a'"), ("self", "'self' → 'self'")] {
      do {
        _ = try await CredentialChain(
          environment: files.environment, profile: profile, transport: FakeTransport([])
        )
        .provider()
        Issue.record("expected a loop error")
      } catch {
        #expect(error.description.contains("make a loop (\(loop))"), "\(error)")
      }
    }
  }

  @Test func mfaSerialIsExplainedInOneSentence() async throws {
    let files = try AWSFiles(
      config: """
        [profile mfa]
        role_arn = arn:aws:iam::123456789012:role/admin
        source_profile = base
        mfa_serial = arn:aws:iam::123456789012:mfa/me
        """,
      credentials: "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = basesecret\n")
    defer { files.remove() }
    do {
      _ = try await CredentialChain(environment: files.environment, profile: "mfa").provider()
      Issue.record("expected an error")
    } catch {
      #expect(error.description.contains("cannot ask for an MFA code without a terminal"))
    }
  }

  @Test func roleChainsAssumeEachRoleWithTheCredentialsOfTheOneBefore() async throws {
    let files = try AWSFiles(
      config: """
        [profile base]
        region = eu-west-1
        [profile first]
        role_arn = arn:aws:iam::111111111111:role/first
        source_profile = base
        [profile second]
        role_arn = arn:aws:iam::222222222222:role/second
        source_profile = first
        role_session_name = nightly-patch
        external_id = ext-42
        duration_seconds = 1800
        region = eu-west-1
        """,
      credentials: "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = basesecret\n")
    defer { files.remove() }
    let transport = FakeTransport([
      stsAnswer("AssumeRole", id: "ASIAFIRST"), stsAnswer("AssumeRole", id: "ASIASECOND"),
    ])
    let clock = ManualClock()
    let credentials = try await CredentialChain(
      environment: files.environment, profile: "second", transport: transport, clock: clock.read
    ).resolve()
    #expect(credentials.accessKeyID == "ASIASECOND")
    #expect(credentials.sessionToken == "token-ASIASECOND")
    #expect(credentials.expiration == AWSTimeProbe.date("2027-01-15T09:00:00Z"))
    #expect(transport.sent.count == 2)
    let first = transport.sent[0]
    #expect(first.url.absoluteString == "https://sts.eu-west-1.amazonaws.com/")
    #expect(form(first)["Action"] == "AssumeRole")
    #expect(form(first)["RoleArn"] == "arn:aws:iam::111111111111:role/first")
    #expect(
      header(first, "Authorization")?.contains("Credential=AKIABASE/20270115/eu-west-1/sts/aws4_request")
        == true)
    let second = transport.sent[1]
    #expect(form(second)["RoleArn"] == "arn:aws:iam::222222222222:role/second")
    #expect(form(second)["RoleSessionName"] == "nightly-patch")
    #expect(form(second)["ExternalId"] == "ext-42")
    #expect(form(second)["DurationSeconds"] == "1800")
    #expect(header(second, "Authorization")?.contains("Credential=ASIAFIRST/") == true)
    #expect(header(second, "X-Amz-Security-Token") == "token-ASIAFIRST")
  }

  @Test func credentialSourceEnvironmentSignsTheAssumeRoleWithTheEnvironmentKeys() async throws {
    let files = try AWSFiles(
      config: """
        [profile deploy]
        role_arn = arn:aws:iam::123456789012:role/deploy
        credential_source = Environment
        [profile odd]
        role_arn = arn:aws:iam::123456789012:role/deploy
        credential_source = Somewhere
        """)
    defer { files.remove() }
    var env = files.environment
    env["AWS_ACCESS_KEY_ID"] = "AKIAENVIRONMENT"
    env["AWS_SECRET_ACCESS_KEY"] = "envsecret"
    let transport = FakeTransport([stsAnswer("AssumeRole", id: "ASIADEPLOY")])
    let credentials = try await CredentialChain(environment: env, profile: "deploy", transport: transport)
      .resolve()
    #expect(credentials.accessKeyID == "ASIADEPLOY")
    #expect(
      header(try #require(transport.sent.first), "Authorization")?.contains("Credential=AKIAENVIRONMENT/")
        == true)
    do {
      _ = try await CredentialChain(environment: env, profile: "odd", transport: FakeTransport([])).provider()
      Issue.record("expected an error")
    } catch {
      #expect(error.description.contains("expected Environment, Ec2InstanceMetadata or EcsContainer"))
    }
  }

  @Test func stsEndpointOverridesAndErrorsSayWhatSTSSaid() async throws {
    let files = try AWSFiles(
      config: """
        [profile role]
        role_arn = arn:aws:iam::111111111111:role/r
        source_profile = role
        aws_access_key_id = AKIAROLE
        aws_secret_access_key = rolesecret
        endpoint_url = http://127.0.0.1:7
        """)
    defer { files.remove() }
    let refusal = """
      <ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>\
      <Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole\u{1b}[2J\u{202e}</Message>\
      </Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>
      """
    let transport = FakeTransport([json(403, refusal)])
    var env = files.environment
    env["AWS_ENDPOINT_URL_STS"] = "http://127.0.0.1:8"
    do {
      _ = try await CredentialChain(environment: env, profile: "role", transport: transport).resolve()
      Issue.record("expected an error")
    } catch {
      #expect(transport.sent.first?.url.absoluteString == "http://127.0.0.1:8/")
      #expect(
        error.description
          == "AssumeRole of arn:aws:iam::111111111111:role/r for the AWS profile 'role' was refused: AccessDenied: User is not authorized to perform: sts:AssumeRole [2J (HTTP 403 from http://127.0.0.1:8, request c6104cbe-af31-11e0-8154-cbc7ccf896c7)."
      )
      #expect(!error.description.contains("rolesecret"))
    }
    // Without the variable, the profile's endpoint_url.
    let second = FakeTransport([stsAnswer("AssumeRole", id: "ASIAX")])
    _ = try await CredentialChain(environment: files.environment, profile: "role", transport: second)
      .resolve()
    #expect(second.sent.first?.url.absoluteString == "http://127.0.0.1:7/")
  }

  @Test func webIdentityIsUnsignedAndReadsTheTokenFile() async throws {
    let files = try AWSFiles(config: "")
    defer { files.remove() }
    var env = files.environment
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = try files.write("eyJ.token.sig\n", to: "token")
    env["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/ci"
    env["AWS_ROLE_SESSION_NAME"] = "ci-job"
    env["AWS_REGION"] = "us-west-2"
    let transport = FakeTransport([stsAnswer("AssumeRoleWithWebIdentity", id: "ASIAWEB")])
    let credentials = try await CredentialChain(environment: env, transport: transport).resolve()
    #expect(credentials.accessKeyID == "ASIAWEB")
    let sent = try #require(transport.sent.first)
    #expect(sent.url.absoluteString == "https://sts.us-west-2.amazonaws.com/")
    #expect(header(sent, "Authorization") == nil)
    #expect(form(sent)["Action"] == "AssumeRoleWithWebIdentity")
    #expect(form(sent)["WebIdentityToken"] == "eyJ.token.sig")
    #expect(form(sent)["RoleSessionName"] == "ci-job")
  }

  @Test func credentialProcessRunsWithoutAShellAndItsOutputIsChecked() async throws {
    let files = try AWSFiles(config: "")
    defer { files.remove() }
    let script = try files.write(
      """
      #!/bin/sh
      echo "called with [$1] [$2]" >&2
      if [ "$1" = "fail" ]; then exit 3; fi
      if [ "$1" = "junk" ]; then echo 'not json'; exit 0; fi
      printf '{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "procsecret", "SessionToken": "proctoken", "Expiration": "2027-01-15T09:00:00Z"}'
      """, to: "creds helper.sh", mode: 0o700)
    let config = """
      [profile ok]
      credential_process = "\(script)" 'two words' "a\\"b"
      [profile fail]
      credential_process = "\(script)" fail
      [profile junk]
      credential_process = "\(script)" junk
      """
    try config.write(toFile: files.directory + "/.aws/config", atomically: true, encoding: .utf8)
    let ok = try await CredentialChain(environment: files.environment, profile: "ok").resolve()
    #expect(ok.accessKeyID == "ASIAPROC")
    #expect(ok.sessionToken == "proctoken")
    #expect(ok.expiration == AWSTimeProbe.date("2027-01-15T09:00:00Z"))
    for (profile, expected) in [("fail", "exited with status 3"), ("junk", "did not print a JSON object")] {
      do {
        _ = try await CredentialChain(environment: files.environment, profile: profile).resolve()
        Issue.record("expected an error")
      } catch {
        #expect(error.description.contains(expected), "\(error)")
        #expect(error.description.contains("'\(profile)'"))
      }
    }
  }

  @Test func ssoReadsTheTokenCacheAndCallsThePortal() async throws {
    let files = try AWSFiles(
      config: """
        [profile dev]
        sso_session = corp
        sso_account_id = 123456789012
        sso_role_name = Operator
        [sso-session corp]
        sso_start_url = https://corp.awsapps.com/start
        sso_region = eu-west-1
        """)
    defer { files.remove() }
    let clock = ManualClock()
    // The cache file is named by the SHA-1 of the session name ("corp"), in hex.
    let name = "ee0bfd2552fbd840c02cc48b6e823320543c450f"
    try #"{"accessToken": "sso-access-token", "expiresAt": "2027-01-15T09:00:00Z", "region": "eu-west-1"}"#
      .write(
        toFile: files.directory + "/.aws/sso/cache/\(name).json", atomically: true, encoding: .utf8)
    let answer = json(
      200,
      #"{"roleCredentials": {"accessKeyId": "ASIASSO", "secretAccessKey": "ssosecret", "sessionToken": "ssotoken", "expiration": 1800003600000}}"#
    )
    let transport = FakeTransport([answer])
    let credentials = try await CredentialChain(
      environment: files.environment, profile: "dev", transport: transport, clock: clock.read
    ).resolve()
    #expect(credentials.accessKeyID == "ASIASSO")
    #expect(credentials.expiration == Date(timeIntervalSince1970: 1_800_003_600))
    let sent = try #require(transport.sent.first)
    #expect(sent.method == "GET")
    #expect(
      sent.url.absoluteString
        == "https://portal.sso.eu-west-1.amazonaws.com/federation/credentials?account_id=123456789012&role_name=Operator"
    )
    #expect(header(sent, "x-amz-sso_bearer_token") == "sso-access-token")
    // An expired token asks for a new login, before anything is sent.
    clock.advance(400 * 86400)
    let none = FakeTransport([])
    do {
      _ = try await CredentialChain(
        environment: files.environment, profile: "dev", transport: none, clock: clock.read
      )
      .resolve()
      Issue.record("expected an error")
    } catch {
      #expect(error.description.contains("run aws sso login --profile dev"), "\(error)")
      #expect(!error.description.contains("sso-access-token"))
      #expect(none.sent.isEmpty)
    }
  }

  @Test func containerCredentialsSendTheAuthorizationToken() async throws {
    let files = try AWSFiles(config: "")
    defer { files.remove() }
    var env = files.environment
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.0.0.1:9/creds"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = try files.write("pod-token\n", to: "auth")
    let transport = FakeTransport([
      json(
        200,
        #"{"AccessKeyId":"ASIACTR","SecretAccessKey":"s","Token":"t","Expiration":"2027-01-15T09:00:00Z"}"#)
    ])
    let credentials = try await CredentialChain(environment: env, transport: transport).resolve()
    #expect(credentials.accessKeyID == "ASIACTR")
    #expect(header(try #require(transport.sent.first), "Authorization") == "pod-token")
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://203.0.113.9/creds"
    await #expect(throws: InstanceConnectError.self) {
      _ = try await CredentialChain(environment: env, transport: FakeTransport([])).provider()
    }
  }
}

enum AWSTimeProbe {
  static func date(_ text: String) -> Date? {
    let formatter = ISO8601DateFormatter()
    return formatter.date(from: text)
  }
}

@Suite struct ServiceErrorTests {
  @Test func ec2AndQueryAndJSONErrorsAreDecoded() {
    let ec2 = ServiceError.decode(
      status: 401, headers: [:],
      body: Array(
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>59dbff89-35bd-4eac-99ed-be587EXAMPLE</RequestID></Response>
        """.utf8), endpoint: "https://ec2.us-east-1.amazonaws.com")
    #expect(ec2.code == "AuthFailure")
    #expect(ec2.message == "AWS was not able to validate the provided access credentials")
    #expect(ec2.requestID == "59dbff89-35bd-4eac-99ed-be587EXAMPLE")
    let moto = ServiceError.decode(
      status: 401, headers: [:],
      body: Array(
        #"<?xml version="1.0" encoding="utf-8"?><ErrorResponse><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#
          .utf8), endpoint: "x")
    #expect(moto.code == "AuthFailure")
    let connect = ServiceError.decode(
      status: 400, headers: ["x-amzn-requestid": "abc-1"],
      body: Array(
        #"{"__type":"com.amazon#AuthException","message":"User: arn:x is not authorized &amp; denied"}"#.utf8),
      endpoint: "x")
    #expect(connect.code == "AuthException")
    #expect(connect.message == "User: arn:x is not authorized &amp; denied")
    #expect(connect.requestID == "abc-1")
    let entities = ServiceError.decode(
      status: 400, headers: [:],
      body: Array("<Error><Code>Bad</Code><Message>a &lt;b&gt; &amp; &#39;c&#x27;</Message></Error>".utf8),
      endpoint: "x")
    #expect(entities.message == "a <b> & 'c'")
  }

  @Test func hostileErrorTextIsBoundedAndInert() {
    let long = String(repeating: "A", count: 5000)
    let body =
      "<Response><Errors><Error><Code>Auth\u{1b}[31mFailure</Code><Message>bad\u{202e}txt\u{0}\n\r\(long)</Message></Error></Errors><RequestID>\(long)</RequestID></Response>"
    let error = ServiceError.decode(status: 401, headers: [:], body: Array(body.utf8), endpoint: "x")
    #expect(error.code == "HTTP401")
    #expect(error.requestID == nil)
    #expect(error.message.unicodeScalars.count <= 401)
    #expect(!error.message.unicodeScalars.contains { $0.value < 0x20 || $0 == "\u{202e}" })
    #expect(error.message.hasPrefix("bad txt AAAA"))
    // A body far larger than any error is not parsed past its first 16 KiB.
    let huge = Array(
      ("<Response>" + String(repeating: "x", count: 1 << 20) + "<Code>Late</Code></Response>").utf8)
    #expect(ServiceError.decode(status: 500, headers: [:], body: huge, endpoint: "x").code == "HTTP500")
  }
}
