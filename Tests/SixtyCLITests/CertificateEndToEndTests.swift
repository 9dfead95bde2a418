import Foundation
import InstanceConnect
import Testing

/// Certificate mode with real sshd hosts that trust the broker as their certificate authority
/// (TrustedUserCAKeys, AuthorizedPrincipalsFile, RevokedKeys): a run, and what a certificate must
/// not open.
@Suite(.serialized) struct CertificateEndToEndTests {
  static var canRun: Bool { LocalFleet.canRun }

  /// A fresh Ed25519 key pair in a 0700 directory: (private key path, public key line).
  func keypair(_ fleet: LocalFleet, _ name: String) throws -> (String, String) {
    let dir = fleet.directory + "/keys-\(name)"
    try FileManager.default.createDirectory(
      atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let path = dir + "/id"
    let made = try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path])
    #expect(made.status == 0)
    let line = try String(contentsOfFile: path + ".pub", encoding: .utf8).trimmingCharacters(in: .newlines)
    return (path, line)
  }

  func client(_ fleet: LocalFleet) -> InstanceConnectClient {
    InstanceConnectClient(
      region: "us-east-1",
      credentials: AWSCredentials(accessKeyID: LocalFleet.accessKeyID, secretAccessKey: LocalFleet.secret),
      endpoint: URL(string: fleet.endpoint), retry: .none)
  }

  /// Asks the broker for a certificate of `key` for `user` on `host`, written beside the key.
  /// (One client per fleet: it never signs the same request twice in one second, which the broker
  /// would refuse as a replay.)
  func certify(
    _ fleet: LocalFleet, key: (String, String), user: String, host: LocalFleet.Host,
    via client: InstanceConnectClient? = nil
  ) async throws -> (path: String, serial: UInt64) {
    let answer = try await (client ?? self.client(fleet)).signSSHPublicKey(
      SendSSHPublicKeyRequest(instanceID: host.instanceID, osUser: user, publicKey: key.1))
    let certificate = try #require(answer.certificate)
    let path = key.0 + "-cert.pub"
    try (certificate + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    return (path, try #require(answer.serial))
  }

  /// `ssh` as `user` to `host` with the key and its certificate only: exit status and stderr.
  func login(_ key: String, certificate: String, user: String, host: LocalFleet.Host) throws -> (
    Int32, String
  ) {
    let result = try runProgram(
      "/usr/bin/ssh",
      [
        "-i", key, "-o", "CertificateFile=\(certificate)", "-o", "IdentitiesOnly=yes", "-o",
        "IdentityAgent=none",
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-p", String(host.port), "-l", user, host.address,
        "true",
      ])
    return (result.status, result.stderr)
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func aRunLogsInWithCertificatesWhenTheBrokerPrefersThem() throws {
    try withLocalFleet(LocalFleet(count: 3, certificates: true, preferCertificates: true)) { fleet in
      let playbook = fleet.directory + "/certs.yml"
      try """
      name: certs
      hosts: all
      tasks:
        - name: who
          command: [id, -un]
      """.write(toFile: playbook, atomically: true, encoding: .utf8)
      let report = fleet.directory + "/certs.json"
      let html = fleet.directory + "/certs.html"
      let plan = try SixtyBinary.run(
        ["run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--dry-run"],
        environment: fleet.environment)
      #expect(
        plan.stdout.contains("  login: as the endpoint prefers: certificates from a sixty broker"),
        "\(plan.stdout)")
      let run = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report", report,
          "--html", html, "--no-progress", "-v",
        ], environment: fleet.environment)
      #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)\n\(fleet.hosts[0].sshLog.suffix(3000))")
      #expect(
        run.stderr.contains("sixty: login: certificates, because the endpoint is a certificate authority"),
        "\(run.stderr)")
      #expect(run.stderr.contains("sixty: ssh client: built-in"), "\(run.stderr)")
      let data = try #require(FileManager.default.contents(atPath: report))
      let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
      #expect((json["pushes"] as? [String: Any])?["mode"] as? String == "certificate")
      // Each host's sshd accepted a certificate of the broker's CA, and its log names the audit
      // record: the key id is the request id, the serial its sequence number.
      let audit = try String(contentsOfFile: fleet.auditPath, encoding: .utf8)
      let records = audit.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
      }.filter { $0["event"] as? String == "certificate" && $0["outcome"] as? String == "accepted" }
      #expect(records.count == 3)
      for host in fleet.hosts {
        let log = host.sshLog
        guard let record = records.first(where: { $0["instance"] as? String == host.instanceID }),
          let id = record["request_id"] as? String, let serial = record["seq"] as? Int
        else {
          Issue.record("no certificate record for \(host.name)")
          continue
        }
        #expect(
          log.contains("-CERT") && log.contains("ID \(id) (serial \(serial))"),
          "\(host.name): \(log.suffix(2000))")
      }
      // The HTML report shows certificates where it shows pushes.
      if HTMLReportEndToEndTests.canRender {
        let dom = try Chromium.dom(html)
        #expect(
          dom.contains("certificate issued") && dom.contains("60-second certificates signed by the broker"))
        #expect(dom.contains("<i class=\"push\"></i>certificate issued</span>"), "\(dom.suffix(3000))")
      }
      // Nothing was pushed: no key reached the agents' list.
      #expect(!audit.contains("\"event\":\"push\""))
    }
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func aCertificateOpensOnlyItsHostAndUserAndNotOnceRevoked() async throws {
    let fleet = try LocalFleet(count: 2, certificates: true)
    defer { fleet.stop() }
    let (a, b) = (fleet.hosts[0], fleet.hosts[1])
    let key = try keypair(fleet, "one")
    let client = client(fleet)
    let (certificate, serial) = try await certify(fleet, key: key, user: "root", host: a, via: client)
    // Its host and user: in.
    var (status, stderr) = try login(key.0, certificate: certificate, user: "root", host: a)
    #expect(status == 0, "\(stderr)\n\(a.sshLog.suffix(2000))")
    // Another host: its principal names the first.
    (status, stderr) = try login(key.0, certificate: certificate, user: "root", host: b)
    #expect(status == 255 && stderr.contains("Permission denied"), "\(stderr)")
    // Another user on its host.
    (status, stderr) = try login(
      key.0, certificate: certificate, user: fleet.user == "root" ? "nobody" : fleet.user, host: a)
    #expect(status == 255 && stderr.contains("Permission denied"), "\(stderr)")
    // Revoked by serial: the broker's KRL, which sshd reads at each login.
    let revoke = try SixtyBinary.run(
      ["broker", "revoke", "--config", fleet.directory + "/broker.yml", "--serial", String(serial)])
    #expect(revoke.status == 0, "\(revoke.stderr)")
    (status, stderr) = try login(key.0, certificate: certificate, user: "root", host: a)
    #expect(status == 255 && stderr.contains("Permission denied"), "\(stderr)")
    #expect(a.sshLog.contains("revoked"), "\(a.sshLog.suffix(2000))")
    // A new certificate for the same key still works: only that serial was revoked.
    let (again, _) = try await certify(fleet, key: key, user: "root", host: a, via: client)
    (status, stderr) = try login(key.0, certificate: again, user: "root", host: a)
    #expect(status == 0, "\(stderr)")
    // The lines to install on hosts: the CA's public key.
    let lines = try SixtyBinary.run(["broker", "ca-public-key", "--config", fleet.directory + "/broker.yml"])
    let ca = try String(contentsOfFile: fleet.directory + "/ca.key.pub", encoding: .utf8)
    #expect(
      lines.stdout.hasPrefix(ca.split(separator: " ").prefix(2).joined(separator: " ")), "\(lines.stdout)")
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func aCertificateOpensNothingAfterItsWindow() async throws {
    // 20 s: long enough for a first login on a machine busy with other tests.
    let fleet = try LocalFleet(count: 1, ttl: "20s", certificates: true)
    defer { fleet.stop() }
    let host = fleet.hosts[0]
    let key = try keypair(fleet, "short")
    let asked = Date()
    let (certificate, _) = try await certify(fleet, key: key, user: "root", host: host)
    var (status, stderr) = try login(key.0, certificate: certificate, user: "root", host: host)
    #expect(status == 0, "\(stderr)\n\(host.sshLog.suffix(3000))")
    // Valid for the key TTL after signing: 22 s after asking it has expired.
    let wait = 22 - Date().timeIntervalSince(asked)
    if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
    (status, stderr) = try login(key.0, certificate: certificate, user: "root", host: host)
    #expect(status == 255 && stderr.contains("Permission denied"), "\(stderr)")
    #expect(host.sshLog.contains("expired"), "\(host.sshLog.suffix(2000))")
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func aCertificateOpensNothingFromOutsideTheHostsAllowedSources() async throws {
    let fleet = try LocalFleet(count: 1, allowedSources: ["10.77.0.0/16"], certificates: true)
    defer { fleet.stop() }
    let host = fleet.hosts[0]
    let key = try keypair(fleet, "far")
    let (certificate, _) = try await certify(fleet, key: key, user: "root", host: host)
    let listed = try runProgram("/usr/bin/ssh-keygen", ["-L", "-f", certificate])
    #expect(listed.stdout.contains("source-address 10.77.0.0/16"), "\(listed.stdout)")
    let (status, stderr) = try login(key.0, certificate: certificate, user: "root", host: host)
    #expect(status == 255 && stderr.contains("Permission denied"), "\(stderr)")
    #expect(host.sshLog.contains("source address"), "\(host.sshLog.suffix(2000))")
  }

  @Test(.enabled(if: canRun, "needs root and sshd"))
  func aRotationTrustsBothCAKeysUntilTheOldOneIsRemoved() async throws {
    let fleet = try LocalFleet(count: 1, certificates: true)
    defer { fleet.stop() }
    let host = fleet.hosts[0]
    let trusted = fleet.directory + "/ca.key.pub"  // the hosts' TrustedUserCAKeys
    let key = try keypair(fleet, "rotate")
    let spare = try keypair(fleet, "rotate-spare")
    let client = client(fleet)
    let (old, oldSerial) = try await certify(fleet, key: key, user: "root", host: host, via: client)
    let (oldSpare, _) = try await certify(fleet, key: spare, user: "root", host: host, via: client)
    // The rotation: a new CA key (made at start), the old one kept as a previous key; the same
    // audit log, whose sequence numbers (the serials) go on.
    try FileManager.default.copyItem(atPath: trusted, toPath: fleet.directory + "/ca-old.pub")
    let original = try String(contentsOfFile: fleet.directory + "/broker.yml", encoding: .utf8)
    let rotated = fleet.directory + "/rotated.yml"
    try original.replacingOccurrences(
      of: "ca_key_file: \(fleet.directory)/ca.key",
      with:
        "ca_key_file: \(fleet.directory)/ca-new.key\n  previous_ca_key_files: [\(fleet.directory)/ca-old.pub]"
    ).write(toFile: rotated, atomically: true, encoding: .utf8)
    chmod(rotated, 0o600)
    let lines = try SixtyBinary.run(["broker", "ca-public-key", "--config", rotated])
    #expect(lines.status == 0, "\(lines.stderr)")
    let both = lines.stdout.split(separator: "\n")
    #expect(both.count == 2, "\(lines.stdout)")
    let oldLine = try String(contentsOfFile: trusted, encoding: .utf8).split(separator: " ").prefix(2).joined(
      separator: " ")
    #expect(both.last?.hasPrefix(oldLine) == true, "the previous key comes second: \(lines.stdout)")
    // Hosts trust both keys; then the broker restarts with the new key.
    try lines.stdout.write(toFile: trusted, atomically: true, encoding: .utf8)
    fleet.broker.stop()
    let serve = try LocalProcess(
      SixtyBinary.path,
      ["broker", "serve", "--config", rotated, "--port-file", fleet.directory + "/rotated.port"],
      logPath: fleet.directory + "/rotated.log")
    defer { serve.stop() }
    var port: Int?
    for _ in 0..<200 where port == nil && serve.isRunning {
      port = (try? String(contentsOfFile: fleet.directory + "/rotated.port", encoding: .utf8)).flatMap {
        Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
      }
      if port == nil { try await Task.sleep(for: .milliseconds(50)) }
    }
    let rotatedPort = try #require(port, "the rotated broker did not start: \(serve.log)")
    let newClient = InstanceConnectClient(
      region: "us-east-1",
      credentials: AWSCredentials(accessKeyID: LocalFleet.accessKeyID, secretAccessKey: LocalFleet.secret),
      endpoint: URL(string: "http://127.0.0.1:\(rotatedPort)"), retry: .none)
    let newKey = try keypair(fleet, "rotate-new")
    let (new, newSerial) = try await certify(fleet, key: newKey, user: "root", host: host, via: newClient)
    #expect(newSerial > oldSerial, "the serials go on across the rotation")
    var (status, stderr) = try login(key.0, certificate: old, user: "root", host: host)
    #expect(status == 0, "a certificate of the old key during the rotation: \(stderr)")
    (status, stderr) = try login(newKey.0, certificate: new, user: "root", host: host)
    #expect(status == 0, "a certificate of the new key: \(stderr)")
    // A serial of the old key's revoked through the rotated configuration: its KRL covers both.
    let revoke = try SixtyBinary.run(["broker", "revoke", "--config", rotated, "--serial", String(oldSerial)])
    #expect(revoke.status == 0, "\(revoke.stderr)")
    (status, stderr) = try login(key.0, certificate: old, user: "root", host: host)
    #expect(status == 255, "a revoked certificate of the old key: \(stderr)")
    (status, stderr) = try login(spare.0, certificate: oldSpare, user: "root", host: host)
    #expect(status == 0, "another certificate of the old key, not revoked: \(stderr)")
    // The rotation ends: hosts trust the new key alone, and the old key's certificates stop.
    try (String(both[0]) + "\n").write(toFile: trusted, atomically: true, encoding: .utf8)
    (status, stderr) = try login(spare.0, certificate: oldSpare, user: "root", host: host)
    #expect(
      status == 255 && stderr.contains("Permission denied"), "the old key after the rotation: \(stderr)")
    (status, stderr) = try login(newKey.0, certificate: new, user: "root", host: host)
    #expect(status == 0, "the new key after the rotation: \(stderr)")
  }
}
