import Foundation
import Testing

/// `sixty push` with the credentials real teams use: an assumed role (moto's STS, signature
/// checked), web identity, SSO through a stand-in portal, and a missing profile. Pushes signed
/// with temporary credentials go to a moto that checks no signature: moto's signature check does
/// not know the credentials its own STS hands out. Everything on 127.0.0.1.
@Suite(.serialized) struct AWSCredentialsEndToEndTests {
  struct Scratch {
    let directory: String
    let publicKey: String
    init() throws {
      directory = NSTemporaryDirectory() + "sixty-awscred-\(UUID().uuidString)"
      try FileManager.default.createDirectory(
        atPath: directory + "/.aws/sso/cache", withIntermediateDirectories: true)
      let keygen = try runProgram(
        "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "cred", "-f", directory + "/k"])
      guard keygen.status == 0 else { throw MotoServer.Failure("ssh-keygen failed: \(keygen.stderr)") }
      publicKey = directory + "/k.pub"
    }

    /// Only these files and settings: nothing from the environment the tests run in.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
      var env = [
        "HOME": directory, "AWS_CONFIG_FILE": directory + "/.aws/config",
        "AWS_SHARED_CREDENTIALS_FILE": directory + "/.aws/credentials", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
        "AWS_DEFAULT_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ENDPOINT_URL": "",
        "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
      ]
      for (key, value) in extra { env[key] = value }
      return env
    }

    func write(config: String, credentials: String = "") throws {
      try config.write(toFile: directory + "/.aws/config", atomically: true, encoding: .utf8)
      try credentials.write(toFile: directory + "/.aws/credentials", atomically: true, encoding: .utf8)
    }

    func push(_ endpoint: String, _ extra: [String] = []) -> [String] {
      [
        "push", "--instance-id", "i-0123456789abcdef0", "--os-user", "ec2-user", "--public-key", publicKey,
        "--endpoint-url", endpoint,
      ] + extra
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
  }

  @Test(.enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"))
  func anAssumedRoleProfilePushesAndSTSRefusalsSayWhy() throws {
    let scratch = try Scratch()
    defer { scratch.remove() }
    let sts = try MotoServer(directory: scratch.directory, actions: ["sts:AssumeRole"])
    defer { sts.stop() }
    let push = try MotoServer(directory: scratch.directory, checkSignatures: false)
    defer { push.stop() }
    let config = """
      [profile ops]
      role_arn = arn:aws:iam::123456789012:role/ops
      source_profile = base
      role_session_name = sixty-e2e
      duration_seconds = 900
      region = us-east-1
      """
    try scratch.write(
      config: config,
      credentials:
        "[base]\naws_access_key_id = \(sts.accessKeyID)\naws_secret_access_key = \(sts.secretAccessKey)\n")
    let env = scratch.environment(["AWS_ENDPOINT_URL_STS": sts.endpoint])
    let ok = try SixtyBinary.run(scratch.push(push.endpoint, ["--profile", "ops"]), environment: env)
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(ok.stdout.hasPrefix("request id: "))
    // moto's STS answered one more call than the three that set up its user: the AssumeRole.
    #expect(
      sts.process.log.components(separatedBy: "\"POST / HTTP/1.1\" 200").count - 1 == 4, "\(sts.process.log)")
    // A wrong secret in the source profile: moto's STS refuses the AssumeRole signature.
    try scratch.write(
      config: config,
      credentials: "[base]\naws_access_key_id = \(sts.accessKeyID)\naws_secret_access_key = wrong-secret\n")
    let bad = try SixtyBinary.run(scratch.push(push.endpoint, ["--profile", "ops"]), environment: env)
    #expect(bad.status == 3, "\(bad.stderr)")
    #expect(
      bad.stderr.contains(
        "AssumeRole of arn:aws:iam::123456789012:role/ops for the AWS profile 'ops' was refused: SignatureDoesNotMatch"
      ),
      "\(bad.stderr)")
    #expect(bad.stderr.contains("from \(sts.endpoint)"))
    #expect(!bad.stderr.contains("wrong-secret"))
  }

  @Test(.enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"))
  func webIdentityFromTheEnvironmentPushes() throws {
    let scratch = try Scratch()
    defer { scratch.remove() }
    let moto = try MotoServer(directory: scratch.directory, checkSignatures: false)
    defer { moto.stop() }
    try scratch.write(config: "")
    try "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln\n".write(
      toFile: scratch.directory + "/token", atomically: true, encoding: .utf8)
    let env = scratch.environment([
      "AWS_WEB_IDENTITY_TOKEN_FILE": scratch.directory + "/token",
      "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ci", "AWS_ENDPOINT_URL_STS": moto.endpoint,
    ])
    let ok = try SixtyBinary.run(scratch.push(moto.endpoint), environment: env)
    #expect(ok.status == 0, "\(ok.stderr)")
    // Two calls: the unsigned AssumeRoleWithWebIdentity, then the push.
    #expect(
      moto.process.log.components(separatedBy: "\"POST / HTTP/1.1\" 200").count - 1 == 2,
      "\(moto.process.log)")
  }

  /// A stand-in SSO portal: answers GetRoleCredentials for one bearer token, 401 for any other.
  static let portal = """
    import http.server, json, sys
    class Portal(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = (self.path == "/federation/credentials?account_id=123456789012&role_name=Operator"
                  and self.headers.get("x-amz-sso_bearer_token") == "cached-sso-token")
            if ok:
                body = {"roleCredentials": {"accessKeyId": "ASIASSOROLE", "secretAccessKey": "ssosecret",
                        "sessionToken": "ssotoken", "expiration": 4102444800000}}
                self.send_response(200)
            else:
                body = {"message": "Session token not found or invalid"}
                self.send_response(401)
                self.send_header("x-amzn-ErrorType", "UnauthorizedException")
            data = json.dumps(body).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def log_message(self, *args):
            sys.stderr.write("%s\\n" % self.path)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Portal).serve_forever()
    """

  @Test(.enabled(if: MotoServer.available, "moto_server is not installed (make test installs it)"))
  func ssoProfilesUseTheTokenCacheAndSayWhenToLogIn() throws {
    let scratch = try Scratch()
    defer { scratch.remove() }
    let moto = try MotoServer(directory: scratch.directory, checkSignatures: false)
    defer { moto.stop() }
    let port = LocalProcess.freePort()
    try Self.portal.write(toFile: scratch.directory + "/portal.py", atomically: true, encoding: .utf8)
    let portal = try LocalProcess(
      LocalProcess.which("python3")!, [scratch.directory + "/portal.py", "\(port)"],
      logPath: scratch.directory + "/portal.log")
    defer { portal.stop() }
    #expect(LocalProcess.waitForPort(port))
    try scratch.write(
      config: """
        [profile dev]
        sso_session = corp
        sso_account_id = 123456789012
        sso_role_name = Operator
        region = us-east-1
        [sso-session corp]
        sso_start_url = https://corp.awsapps.com/start
        sso_region = eu-west-1
        """)
    // The cache file of session "corp": the SHA-1 of its name.
    let cache = scratch.directory + "/.aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json"
    try #"{"accessToken": "cached-sso-token", "expiresAt": "2100-01-01T00:00:00Z"}"#.write(
      toFile: cache, atomically: true, encoding: .utf8)
    let env = scratch.environment(["AWS_ENDPOINT_URL_SSO": "http://127.0.0.1:\(port)"])
    let ok = try SixtyBinary.run(scratch.push(moto.endpoint, ["--profile", "dev"]), environment: env)
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(portal.log.contains("/federation/credentials?account_id=123456789012&role_name=Operator"))
    // An expired token: the login to run, and nothing sent to the portal or the endpoint.
    try #"{"accessToken": "cached-sso-token", "expiresAt": "2001-01-01T00:00:00Z"}"#.write(
      toFile: cache, atomically: true, encoding: .utf8)
    let expired = try SixtyBinary.run(scratch.push(moto.endpoint, ["--profile", "dev"]), environment: env)
    #expect(expired.status == 2, "\(expired.stderr)")
    #expect(expired.stderr.contains("run aws sso login --profile dev"), "\(expired.stderr)")
    #expect(!expired.stderr.contains("cached-sso-token"))
    // A token the portal does not know.
    try #"{"accessToken": "revoked-token", "expiresAt": "2100-01-01T00:00:00Z"}"#.write(
      toFile: cache, atomically: true, encoding: .utf8)
    let revoked = try SixtyBinary.run(scratch.push(moto.endpoint, ["--profile", "dev"]), environment: env)
    #expect(revoked.status == 2, "\(revoked.stderr)")
    #expect(
      revoked.stderr.contains("UnauthorizedException: Session token not found or invalid"),
      "\(revoked.stderr)")
    #expect(!revoked.stderr.contains("revoked-token"))
  }

  @Test func aMissingProfileIsReportedBeforeAnythingElse() throws {
    let scratch = try Scratch()
    defer { scratch.remove() }
    try scratch.write(config: "[profile real]\nregion = us-east-1\n")
    let env = scratch.environment()
    // The public key file and the inventory do not exist: the profile is reported first.
    let push = try SixtyBinary.run(
      [
        "push", "--instance-id", "i-0123456789abcdef0", "--os-user", "ec2-user", "--public-key",
        scratch.directory + "/missing.pub", "--profile", "x", "--endpoint-url", "http://127.0.0.1:9",
      ], environment: env)
    #expect(push.status == 2)
    #expect(
      push.stderr
        == "sixty: error: The AWS profile 'x' is not in \(scratch.directory)/.aws/config or \(scratch.directory)/.aws/credentials.\n"
    )
    let run = try SixtyBinary.run(
      ["run", "playbooks/fleet-uptime.yml", "-i", scratch.directory + "/missing.yml", "--profile", "x"],
      environment: env)
    #expect(run.status == 2)
    #expect(run.stderr.hasPrefix("sixty: error: The AWS profile 'x' is not in"), "\(run.stderr)")
  }
}
