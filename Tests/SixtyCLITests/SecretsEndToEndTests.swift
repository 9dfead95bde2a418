import Foundation
import Testing

@testable import SixtyKeys

/// Secrets hygiene of a full run: the run's private key and the AWS secret appear in no
/// artifact (output, report, JUnit, history, audit log, broker and sshd logs), in no process's
/// arguments, and core dumps are off while the key is held.
@Suite(.serialized) struct SecretsEndToEndTests {
  /// The 32-byte Ed25519 seed inside an OpenSSH private key file.
  static func seed(ofKeyFile text: String) -> [UInt8]? {
    let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    guard let data = Data(base64Encoded: body) else { return nil }
    let bytes = [UInt8](data)
    // The private section holds string(64 bytes: seed || public key) after string(32 bytes: public key).
    for index in 0..<(bytes.count - 4 - 64) {
      if bytes[index] == 0, bytes[index + 1] == 0, bytes[index + 2] == 0, bytes[index + 3] == 64 {
        let candidate = Array(bytes[(index + 4)..<(index + 4 + 64)])
        // Its second half repeats the public key, which appears earlier in the file.
        let publicKey = Array(candidate[32...])
        if Array(bytes[..<index]).firstRange(of: publicKey) != nil {
          return Array(candidate[..<32])
        }
      }
    }
    return nil
  }

  /// The private exponent and primes (d, p, q) of a PKCS#1 PEM RSA key: INTEGERs 3, 4 and 5 of
  /// its SEQUENCE (version, n, e, d, p, q, …). The modulus is public and is left out.
  static func rsaSecrets(ofPEM text: String) -> [[UInt8]]? {
    guard text.hasPrefix("-----BEGIN RSA PRIVATE KEY-----") else { return nil }
    let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    guard let data = Data(base64Encoded: body), let integers = DER.rsaPrivateKeyIntegers([UInt8](data))
    else { return nil }
    return Array(integers[3...5])
  }

  /// The 32-byte private scalar of a PKCS#8 PEM P-256 key: the OCTET STRING that follows
  /// ECPrivateKey's version 1 (`02 01 01 04 20`).
  static func ecdsaScalar(ofPEM text: String) -> [UInt8]? {
    guard text.hasPrefix("-----BEGIN PRIVATE KEY-----") else { return nil }
    let body = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
    guard let data = Data(base64Encoded: body) else { return nil }
    let bytes = [UInt8](data)
    guard let marker = bytes.firstRange(of: [0x02, 0x01, 0x01, 0x04, 0x20]),
      marker.upperBound + 32 <= bytes.count
    else { return nil }
    return Array(bytes[marker.upperBound..<(marker.upperBound + 32)])
  }

  /// The parent of `pid`, from /proc (nil when it has gone).
  static func parent(of pid: pid_t) -> pid_t? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
    // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses, so read after the last ')'.
    let text = String(decoding: data, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    return fields.count > 1 ? pid_t(fields[1]) : nil
  }

  /// True for a process that descends from this test process without descending from `run`.
  static func isAnotherTestsProcess(_ pid: pid_t, run: pid_t) -> Bool {
    var current = pid
    for _ in 0..<64 {
      if current == run { return false }
      if current == getpid() { return pid != getpid() }
      guard let up = parent(of: current), up > 0 else { return false }
      current = up
    }
    return false
  }

  static func files(under directory: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
    var out: [String] = []
    while let entry = enumerator.nextObject() as? String {
      let path = directory + "/" + entry
      var info = stat()
      if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG { out.append(path) }
    }
    return out
  }

  /// With the default key (RSA, a PEM file), `push.key_type: ed25519` and `push.key_type: ecdsa`
  /// (a PKCS#8 PEM file).
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"), arguments: ["rsa", "ed25519", "ecdsa"])
  func noArtifactOfAFullRunHoldsTheKeyOrTheAWSSecret(keyType: String) throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let dir = fleet.directory
      let keyDir = dir + "/keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      let playbook = dir + "/work.yml"
      try """
      name: work
      hosts: all
      policy:
        push: {key_type: \(keyType)}
      tasks:
        - name: slow
          command: [sleep, "3"]
        - name: talk
          shell: 'echo out-{{ host.name }}; echo err-{{ host.name }} >&2; test {{ host.name }} != web-3'
          needs: [slow]
      """.write(toFile: playbook, atomically: true, encoding: .utf8)
      var env = fleet.environment
      env["SIXTY_KEY_DIR"] = keyDir
      let run = try LocalProcess(
        SixtyBinary.path,
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          dir + "/report.json",
          "--junit", dir + "/junit.xml", "--no-progress",
        ], environment: env, logPath: dir + "/run.log")
      defer { run.stop() }

      // While the run holds its key: read it (as root) and look at every process.
      var keyText: String?
      var deadline = Date().addingTimeInterval(20)
      while keyText == nil && Date() < deadline {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: keyDir)) ?? [] {
          let file = ["rsa": "id_rsa", "ecdsa": "id_ecdsa"][keyType] ?? "id_ed25519"
          keyText = try? String(contentsOfFile: keyDir + "/" + entry + "/" + file, encoding: .utf8)
          // No public key file beside it: ssh must not learn the public half before signing.
          if keyText != nil {
            #expect(!FileManager.default.fileExists(atPath: keyDir + "/" + entry + "/" + file + ".pub"))
          }
        }
        if keyText == nil { Thread.sleep(forTimeInterval: 0.05) }
      }
      let key = try #require(keyText, "the run's key file never appeared: \(run.log)")
      // The secret numbers of the key: the Ed25519 seed, RSA's d, p and q, or the ECDSA scalar.
      let secrets: [[UInt8]]
      if keyType == "rsa" {
        secrets = try #require(
          Self.rsaSecrets(ofPEM: key), "no RSA private key in the key file: \(key.prefix(40))")
      } else if keyType == "ecdsa" {
        secrets = [
          try #require(Self.ecdsaScalar(ofPEM: key), "no P-256 scalar in the key file: \(key.prefix(40))")
        ]
      } else {
        secrets = [try #require(Self.seed(ofKeyFile: key), "no Ed25519 seed in the key file")]
      }
      let limits = try String(contentsOfFile: "/proc/\(run.pid)/limits", encoding: .utf8)
      let core = limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") } ?? ""
      #expect(
        core.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).first == "0", "\(core)")
      Thread.sleep(forTimeInterval: 1)
      // The first line of an OpenSSH Ed25519 key file is the same header for every key, and the
      // first six of an RSA PEM file hold the public modulus; the rest is this key's secret. A
      // P-256 PEM file has three lines, the first two holding parts of the scalar.
      let bodyLines = key.split(separator: "\n").filter { !$0.hasPrefix("-----") }.dropFirst(
        ["rsa": 6, "ecdsa": 0][keyType] ?? 1
      ).filter { $0.count >= 20 }
        .map(String.init)
      #expect(bodyLines.count >= 3)
      let needles: [(String, [UInt8])] =
        secrets.flatMap { secret in
          [
            ("a secret number of the key", secret),
            (
              "a secret number of the key in hex",
              Array(secret.map { String(format: "%02x", $0) }.joined().utf8)
            ),
            (
              "a secret number of the key in base64",
              Array(Data(secret).base64EncodedString().dropLast(2).utf8)
            ),
          ]
        } + bodyLines.map { ("a line of the private key file", Array($0.utf8)) }
      let secret = Array(LocalFleet.secret.utf8)
      // Every process's arguments, now, but those of the other tests that run beside this one
      // (children of this test process that the run did not start: some pass the fleet's
      // secret on their command line on purpose).
      for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
      where Int(entry) != nil && !Self.isAnotherTestsProcess(pid_t(entry)!, run: run.pid) {
        guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
        let bytes = [UInt8](data)
        for (what, needle) in needles + [("the AWS secret", secret)] {
          #expect(bytes.firstRange(of: needle) == nil, "process \(entry)'s arguments hold \(what)")
        }
      }
      deadline = Date().addingTimeInterval(30)
      while run.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
      #expect(run.exitStatus == 1, "\(run.log)")
      #expect(run.log.contains("err-web-3"))
      #expect(
        try FileManager.default.contentsOfDirectory(atPath: keyDir).isEmpty, "the key directory is wiped")

      // Every file the run and the fleet wrote: output, report, JUnit, history (and WAL), audit
      // log, broker and sshd logs and configs.
      let artifacts = Self.files(under: dir)
      #expect(artifacts.contains(dir + "/report.json") && artifacts.contains(dir + "/junit.xml"))
      #expect(artifacts.contains(fleet.historyPath))
      #expect(artifacts.contains(fleet.auditPath))
      for path in artifacts {
        let bytes = [UInt8](FileManager.default.contents(atPath: path) ?? Data())
        for (what, needle) in needles {
          #expect(bytes.firstRange(of: needle) == nil, "\(path) holds \(what)")
        }
        // The broker's own configuration holds the principal's secret by design; nothing else may.
        if !path.hasSuffix("/broker.yml") {
          #expect(bytes.firstRange(of: secret) == nil, "\(path) holds the AWS secret")
        }
      }
    }
  }
}
