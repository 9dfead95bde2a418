import Foundation
import InstanceConnect
import Testing

@Suite struct CredentialChainTests {
  func files(_ credentials: String, _ config: String) throws -> (String, [String: String], () -> Void) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-aws-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try credentials.write(toFile: dir + "/credentials", atomically: true, encoding: .utf8)
    try config.write(toFile: dir + "/config", atomically: true, encoding: .utf8)
    let env = [
      "AWS_SHARED_CREDENTIALS_FILE": dir + "/credentials", "AWS_CONFIG_FILE": dir + "/config",
      "AWS_EC2_METADATA_DISABLED": "true", "HOME": dir,
    ]
    return (dir, env, { try? FileManager.default.removeItem(atPath: dir) })
  }

  let credentialsFile = """
    # comment
    [default]
    aws_access_key_id = AKIADEFAULT
    aws_secret_access_key = defaultsecret

    [ops]
    aws_access_key_id=AKIAOPS
    aws_secret_access_key=opssecret ; trailing comment
    aws_session_token = tok
    """
  let configFile = """
    [default]
    region = eu-central-1
    [profile ops]
    region = ap-southeast-2
    [profile cfgonly]
    aws_access_key_id = AKIACFG
    aws_secret_access_key = cfgsecret
    """

  @Test func environmentComesFirst() async throws {
    let (_, env, cleanup) = try files(credentialsFile, configFile)
    defer { cleanup() }
    var e = env
    e["AWS_ACCESS_KEY_ID"] = "AKIAENV"
    e["AWS_SECRET_ACCESS_KEY"] = "envsecret"
    let creds = try await CredentialChain(environment: e).resolve()
    #expect(creds.accessKeyID == "AKIAENV")
    #expect(creds.source == "environment")
  }

  @Test func profilesFromBothFiles() async throws {
    let (_, env, cleanup) = try files(credentialsFile, configFile)
    defer { cleanup() }
    #expect(try await CredentialChain(environment: env).resolve().accessKeyID == "AKIADEFAULT")
    var e = env
    e["AWS_PROFILE"] = "ops"
    let ops = try await CredentialChain(environment: e).resolve()
    #expect(ops.accessKeyID == "AKIAOPS")
    #expect(ops.secretAccessKey == "opssecret")
    #expect(ops.sessionToken == "tok")
    #expect(
      try await CredentialChain(environment: env, profile: "cfgonly").resolve().accessKeyID == "AKIACFG")
    await #expect(
      throws: InstanceConnectError.unknownProfile(
        "nope", files: [env["AWS_CONFIG_FILE"]!, env["AWS_SHARED_CREDENTIALS_FILE"]!])
    ) {
      try await CredentialChain(environment: env, profile: "nope").resolve()
    }
  }

  @Test func regionOrder() throws {
    let (_, env, cleanup) = try files(credentialsFile, configFile)
    defer { cleanup() }
    #expect(CredentialChain(environment: env).region() == "eu-central-1")
    #expect(CredentialChain(environment: env, profile: "ops").region() == "ap-southeast-2")
    var e = env
    e["AWS_DEFAULT_REGION"] = "us-west-1"
    #expect(CredentialChain(environment: e).region() == "us-west-1")
    e["AWS_REGION"] = "us-west-2"
    #expect(CredentialChain(environment: e).region() == "us-west-2")
    #expect(CredentialChain(environment: e).region(explicit: "sa-east-1") == "sa-east-1")
  }

  @Test func nothingFoundNamesWhatWasTried() async throws {
    let (_, env, cleanup) = try files("", "")
    defer { cleanup() }
    do {
      _ = try await CredentialChain(environment: env).resolve()
      Issue.record("expected no credentials")
    } catch {
      #expect(
        error.description.hasPrefix(
          "No AWS credentials were found (tried environment variables, profile 'default' in "))
    }
  }

  /// IMDSv2 against a local stand-in on 127.0.0.1 (never the real metadata address).
  @Test func instanceRoleThroughIMDSv2() async throws {
    let (dir, env, cleanup) = try files("", "")
    defer { cleanup() }
    let script = """
      import http.server, json, sys
      class H(http.server.BaseHTTPRequestHandler):
          def log_message(self, *a): pass
          def do_PUT(self):
              ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
              self.send_response(200 if ok else 400); self.end_headers(); self.wfile.write(b"TOKEN")
          def do_GET(self):
              if self.headers.get("X-aws-ec2-metadata-token") != "TOKEN":
                  self.send_response(401); self.end_headers(); return
              if self.path == "/latest/meta-data/iam/security-credentials/":
                  body = b"web-role"
              elif self.path == "/latest/meta-data/iam/security-credentials/web-role":
                  body = json.dumps({"AccessKeyId": "ASIAROLE", "SecretAccessKey": "rolesecret", "Token": "roletoken"}).encode()
              else:
                  self.send_response(404); self.end_headers(); return
              self.send_response(200); self.end_headers(); self.wfile.write(body)
      s = http.server.HTTPServer(("127.0.0.1", 0), H)
      print(s.server_address[1], flush=True)
      s.serve_forever()
      """
    try script.write(toFile: dir + "/imds.py", atomically: true, encoding: .utf8)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", dir + "/imds.py"]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    defer {
      // Not waitUntilExit(): it spins the run loop of a cooperative thread.
      kill(process.processIdentifier, SIGKILL)
      var status: Int32 = 0
      _ = waitpid(process.processIdentifier, &status, 0)
    }
    var portLine = Data()
    while !portLine.contains(UInt8(ascii: "\n")) {
      let chunk = out.fileHandleForReading.availableData
      if chunk.isEmpty { break }
      portLine.append(chunk)
    }
    let port = String(decoding: portLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    var e = env
    e["AWS_EC2_METADATA_DISABLED"] = nil
    e["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:\(port)/"
    let creds = try await CredentialChain(environment: e).resolve()
    #expect(creds.accessKeyID == "ASIAROLE")
    #expect(creds.sessionToken == "roletoken")
    #expect(creds.source == "instance role web-role")
    #expect(!"\(creds)".contains("rolesecret"))
  }
}
