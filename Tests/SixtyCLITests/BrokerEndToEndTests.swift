import Foundation
import Testing

/// The broker, the agent and real sshd together: keys pushed by the unmodified AWS CLI and by
/// `sixty push`/`sixty ssh` let a login in for the TTL and never after; refusals are audited.
@Suite(.serialized) struct BrokerEndToEndTests {
  static var awsCLI: String? { LocalProcess.which("aws") }

  func keypair(_ dir: String, _ name: String = "k") throws -> String {
    let path = dir + "/" + name
    let made = try runProgram(
      "/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f", path])
    #expect(made.status == 0)
    return path
  }

  func awsPush(
    _ fleet: LocalFleet, _ host: LocalFleet.Host, keyFile: String, user: String? = nil,
    environment: [String: String]? = nil
  ) throws -> (status: Int32, stdout: String, stderr: String) {
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment ?? fleet.environment { env[k] = v }
    return try runProgram(
      BrokerEndToEndTests.awsCLI!,
      [
        "ec2-instance-connect", "send-ssh-public-key", "--endpoint-url", fleet.endpoint, "--instance-id",
        host.instanceID, "--instance-os-user", user ?? fleet.user, "--ssh-public-key", "file://" + keyFile,
        "--output", "json",
      ], environment: env)
  }

  func ssh(_ fleet: LocalFleet, _ host: LocalFleet.Host, key: String, extra: [String] = [], command: [String])
    throws -> (status: Int32, stdout: String, stderr: String)
  {
    try runProgram("/usr/bin/ssh", fleet.sshArguments(host, key: key, extra: extra) + command)
  }

  func auditLines(_ fleet: LocalFleet) -> [String] {
    ((try? String(contentsOfFile: fleet.auditPath, encoding: .utf8)) ?? "").split(separator: "\n").map(
      String.init)
  }

  @Test(
    .enabled(
      if: LocalFleet.canRun && awsCLI != nil, "needs root, sshd and the aws CLI (make test installs them)"))
  func awsCLIPushLetsSSHInUntilTheTTL() throws {
    try withLocalFleet(LocalFleet(count: 1, ttl: "4s")) { fleet in
      let host = fleet.hosts[0]
      let key = try keypair(fleet.directory)
      // Before any push, nobody gets in.
      #expect(try ssh(fleet, host, key: key, command: ["true"]).status == 255)
      let pushed = try awsPush(fleet, host, keyFile: key + ".pub")
      #expect(pushed.status == 0, "\(pushed.stderr)")
      #expect(pushed.stdout.contains("\"Success\": true"))
      let login = try ssh(fleet, host, key: key, command: ["echo", "hello from", "$(hostname)"])
      #expect(login.status == 0, "\(login.stderr)\n\(host.sshLog)")
      #expect(login.stdout.hasPrefix("hello from"))
      // An authenticated master connection outlives the key.
      let control = fleet.directory + "/cm"
      // -f backgrounds ssh with our pipes; give it /dev/null instead so the wait ends.
      let quoted =
        (["/usr/bin/ssh"] + fleet.sshArguments(host, key: key, extra: ["-M", "-S", control, "-f", "-N"]))
        .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
      let master = try runProgram("/bin/sh", ["-c", quoted + " </dev/null >/dev/null 2>&1"])
      #expect(master.status == 0, "\(master.stderr)")
      defer {
        _ = try? runProgram(
          "/usr/bin/ssh", fleet.sshArguments(host, key: key, extra: ["-S", control, "-O", "exit"]))
      }
      Thread.sleep(forTimeInterval: 5)
      let fresh = try ssh(fleet, host, key: key, extra: ["-S", "none"], command: ["true"])
      #expect(fresh.status == 255, "a login after the TTL must be refused")
      let reused = try ssh(fleet, host, key: key, extra: ["-S", control], command: ["echo", "still here"])
      #expect(reused.status == 0, "\(reused.stderr)")
      #expect(reused.stdout == "still here\n")
      let records = auditLines(fleet)
      #expect(
        records.contains { $0.contains("\"event\":\"push\"") && $0.contains("\"outcome\":\"accepted\"") })
      #expect(
        records.contains { $0.contains("\"event\":\"agent_fetch\"") && $0.contains("\"outcome\":\"served\"") }
      )
      let verify = try SixtyBinary.run(["audit", "verify", fleet.auditPath])
      #expect(verify.status == 0, "\(verify.stderr)")
    }
  }

  @Test(
    .enabled(
      if: LocalFleet.canRun && awsCLI != nil, "needs root, sshd and the aws CLI (make test installs them)"))
  func refusalsAreRefusedAndAudited() throws {
    try withLocalFleet(LocalFleet(count: 1, allowedSources: ["127.0.0.2/32"])) { fleet in
      let host = fleet.hosts[0]
      let key = try keypair(fleet.directory)
      // A wrong secret.
      var env = fleet.environment
      env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
      let wrong = try awsPush(fleet, host, keyFile: key + ".pub", environment: env)
      #expect(wrong.status != 0)
      #expect(wrong.stderr.contains("InvalidSignatureException"))
      // A principal outside its policy (it may push only for 'nobody-else').
      env = fleet.environment
      env["AWS_ACCESS_KEY_ID"] = LocalFleet.limitedKeyID
      env["AWS_SECRET_ACCESS_KEY"] = LocalFleet.limitedSecret
      let outside = try awsPush(fleet, host, keyFile: key + ".pub", environment: env)
      #expect(outside.stderr.contains("AuthException"))
      // A key with an injected option, and one with an embedded newline and a second key.
      let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(
        in: .newlines)
      try "command=\"/bin/sh\" \(publicKey)\n".write(
        toFile: fleet.directory + "/opt.pub", atomically: true, encoding: .utf8)
      try "\(publicKey)\n\(publicKey)\n".write(
        toFile: fleet.directory + "/two.pub", atomically: true, encoding: .utf8)
      for file in ["opt.pub", "two.pub"] {
        let bad = try awsPush(fleet, host, keyFile: fleet.directory + "/" + file)
        #expect(bad.stderr.contains("InvalidArgsException"), "\(file): \(bad.stderr)")
      }
      #expect(
        try ssh(fleet, host, key: key, command: ["true"]).status == 255, "no refused push may let anyone in")
      // A good push, but a login from outside allowed_sources (127.0.0.2/32) is refused by sshd.
      #expect(try awsPush(fleet, host, keyFile: key + ".pub").status == 0)
      let fromOutside = try ssh(fleet, host, key: key, extra: ["-b", "127.0.0.1"], command: ["true"])
      #expect(fromOutside.status == 255)
      let fromInside = try ssh(fleet, host, key: key, extra: ["-b", "127.0.0.2"], command: ["true"])
      #expect(fromInside.status == 0, "\(fromInside.stderr)\n\(host.sshLog)")
      let sshdLog = host.sshd?.log ?? ""
      #expect(sshdLog.contains("not from a permitted host"), "\(sshdLog)")

      // A wrong secret proves nothing about the sender: it is counted, and summarised (at the
      // latest when the broker stops) instead of getting a record of its own.
      fleet.broker.stop()
      let records = auditLines(fleet)
      let refused = records.filter { $0.contains("\"outcome\":\"refused\"") }
      #expect(!refused.contains { $0.contains("InvalidSignatureException") })
      #expect(
        refused.contains {
          $0.contains("\"event\":\"unauthenticated\"")
            && $0.contains("1 request refused before authentication")
            && $0.contains("first: bad_signature")
        }, "\(records)")
      #expect(refused.contains { $0.contains("AuthException") && $0.contains(LocalFleet.limitedKeyID) })
      #expect(refused.contains { $0.contains("options prefix") })
      #expect(refused.contains { $0.contains("newline") })
      #expect(records.contains { $0.contains("\"event\":\"agent_fetch\"") && $0.contains("SHA256:") })
      let show = try SixtyBinary.run(["audit", "show", fleet.auditPath])
      #expect(show.status == 0)
      #expect(show.stdout.contains("push refused"))
      #expect(!show.stdout.contains(LocalFleet.secret))
    }
  }

  static let boto3Push = """
    import boto3, botocore, json, sys
    client = boto3.client("ec2-instance-connect", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                          aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4])
    try:
        answer = client.send_ssh_public_key(InstanceId=sys.argv[5], InstanceOSUser="ops",
                                            SSHPublicKey=open(sys.argv[6]).read())
        print(json.dumps({"Success": answer["Success"]}))
    except botocore.exceptions.ClientError as error:
        print(json.dumps({"Error": error.response["Error"]["Code"], "Message": error.response["Error"]["Message"]}))
    """

  static var boto3: Bool {
    (try? runProgram(LocalProcess.which("python3") ?? "/usr/bin/python3", ["-c", "import boto3"]).status) == 0
  }

  /// boto3 pushes to the broker unchanged (its Content-Type and JSON are what the broker
  /// expects); a broker without 'region' accepts us-east-1 only, and says so.
  @Test(.enabled(if: LocalFleet.canRun && boto3, "needs root and boto3 (make test installs it)"))
  func boto3PushesToABrokerWithTheDefaultRegion() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      let key = try keypair(fleet.directory)
      func push(region: String) throws -> String {
        let result = try runProgram(
          LocalProcess.which("python3")!,
          [
            "-c", Self.boto3Push, fleet.endpoint, region, LocalFleet.accessKeyID, LocalFleet.secret,
            fleet.hosts[0].instanceID, key + ".pub",
          ],
          environment: ProcessInfo.processInfo.environment.merging(
            ["AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null"]
          ) { $1 })
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout
      }
      #expect(try push(region: "us-east-1").contains("\"Success\": true"))
      let elsewhere = try push(region: "eu-west-1")
      #expect(
        elsewhere.contains("InvalidSignatureException") && elsewhere.contains("'us-east-1'"), "\(elsewhere)")
      #expect(fleet.broker.log.contains("region not set in broker.yml"), "\(fleet.broker.log)")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func sixtyPushAndSixtySSHWorkAgainstTheBroker() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let key = try keypair(fleet.directory)
      let host = fleet.hosts[1]
      let push = try SixtyBinary.run(
        [
          "push", "--instance-id", host.instanceID, "--os-user", fleet.user, "--public-key", key + ".pub",
          "--endpoint", fleet.endpoint,
        ], environment: fleet.environment)
      #expect(push.status == 0, "\(push.stderr)")
      #expect(push.stdout.hasPrefix("request id: "))
      let login = try ssh(fleet, host, key: key, command: ["echo", "ok"])
      #expect(login.status == 0, "\(login.stderr)")
      // sixty ssh: generate, push, log in, run a command, wipe.
      let inventory = try fleet.writeInventory()
      var env = fleet.environment
      let keyDir = fleet.directory + "/sixty-keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      env["SIXTY_KEY_DIR"] = keyDir
      let session = try SixtyBinary.run(
        [
          "ssh", "web-1", "-i", inventory, "--endpoint", fleet.endpoint, "-F", "/dev/null", "-o",
          "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "--",
          "echo",
          "via sixty ssh",
        ], environment: env)
      #expect(session.status == 0, "\(session.stderr)\n\(fleet.hosts[0].sshLog)")
      #expect(session.stdout == "via sixty ssh\n")
      #expect(try FileManager.default.contentsOfDirectory(atPath: keyDir).isEmpty)
      let failing = try SixtyBinary.run(
        [
          "ssh", "web-1", "-i", inventory, "--endpoint", fleet.endpoint, "-F", "/dev/null", "-o",
          "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "--",
          "exit",
          "3",
        ], environment: env)
      #expect(failing.status == 3, "ssh's exit status is sixty ssh's")
    }
  }
}
