import Foundation
import SixtyKeys
import Testing

@Suite struct SSHKeyPairTests {
  func check(_ type: KeyType) throws {
    let key = try SSHKeyPair.generate(type, comment: "sixty-test")
    let dir = try EphemeralKeyDirectory(key: key)
    defer { dir.wipe() }
    let derived = try runTool(sshKeygen, ["-y", "-f", dir.privateKeyPath])
    #expect(derived.status == 0, "\(derived.stderr)")
    #expect(derived.stdout.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix(key.authorizedKey))
    for file in [dir.privateKeyPath, dir.publicKeyPath] {
      let listed = try runTool(sshKeygen, ["-l", "-E", "sha256", "-f", file])
      #expect(listed.status == 0)
      #expect(listed.stdout.split(separator: " ")[1] == Substring(key.fingerprint), "\(file)")
    }
    let public_ = try String(contentsOfFile: dir.publicKeyPath, encoding: .utf8)
    #expect(public_ == key.publicKeyLine + "\n")
  }

  @Test func ed25519KeysAreAcceptedBySSHKeygen() throws { try check(.ed25519) }
  @Test func rsa2048KeysAreAcceptedBySSHKeygen() throws { try check(.rsa2048) }
  @Test func rsa4096KeysAreAcceptedBySSHKeygen() throws { try check(.rsa4096) }
  @Test func ecdsaP256KeysAreAcceptedBySSHKeygen() throws { try check(.ecdsaP256) }

  @Test(arguments: ["ed25519", "rsa", "ecdsa"])
  func encodingIsByteIdenticalToSSHKeygen(type: String) throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/k"
    let made = try runTool(sshKeygen, ["-q", "-t", type, "-N", "", "-C", "test@example", "-f", path])
    #expect(made.status == 0)
    let original = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    let (key, checkInt) = try SSHKeyPair.parsePrivateKeyFile(original)
    #expect(key.privateKeyFile(checkInt: checkInt) == original)
    let pub = try String(contentsOfFile: path + ".pub", encoding: .utf8)
    #expect(key.publicKeyLine + "\n" == pub)
    #expect(key.comment == "test@example")
  }

  /// A run's directory: one file per key type, no `.pub`. The RSA key is PKCS#1 PEM, from which
  /// ssh cannot take the public half before it has the private key: it signs at once.
  @Test func aRunsDirectoryHoldsPEMRSAAndOpenSSHEd25519WithoutPublicKeyFiles() throws {
    let rsa = try SSHKeyPair.generate(.rsa2048, comment: "run")
    let ed = try SSHKeyPair.generate(.ed25519, comment: "run")
    let dir = try EphemeralKeyDirectory(keys: [rsa, ed], publicKeyFiles: false)
    defer { dir.wipe() }
    #expect(dir.privateKeyPath == dir.path + "/id_rsa")
    #expect(dir.privateKeyPath(for: .ed25519) == dir.path + "/id_ed25519")
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    #expect(names == ["id_ed25519", "id_rsa", "pid"])
    let pem = try String(contentsOfFile: dir.privateKeyPath, encoding: .utf8)
    #expect(pem.hasPrefix("-----BEGIN RSA PRIVATE KEY-----\n"))
    #expect(pem.hasSuffix("-----END RSA PRIVATE KEY-----\n"))
    for (key, path) in [(rsa, dir.privateKeyPath), (ed, dir.privateKeyPath(for: .ed25519))] {
      var info = stat()
      #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
      let derived = try runTool(sshKeygen, ["-y", "-f", path])
      #expect(derived.status == 0, "\(derived.stderr)")
      #expect(derived.stdout.hasPrefix(key.authorizedKey), "\(path)")
    }
  }

  /// The ECDSA key is a PKCS#8 PEM file that ssh-keygen reads, with the same public key and
  /// fingerprint as ours.
  @Test func theECDSAKeyIsAPKCS8PEMFileThatOpenSSHReads() throws {
    let key = try SSHKeyPair.generate(.ecdsaP256, comment: "run")
    let dir = try EphemeralKeyDirectory(keys: [key], publicKeyFiles: false)
    defer { dir.wipe() }
    #expect(dir.privateKeyPath == dir.path + "/id_ecdsa")
    let pem = try String(contentsOfFile: dir.privateKeyPath, encoding: .utf8)
    #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n") && pem.hasSuffix("-----END PRIVATE KEY-----\n"))
    let derived = try runTool(sshKeygen, ["-y", "-f", dir.privateKeyPath])
    #expect(derived.status == 0, "\(derived.stderr)")
    #expect(derived.stdout.hasPrefix(key.authorizedKey), "\(derived.stdout)")
    let listed = try runTool(sshKeygen, ["-l", "-E", "sha256", "-f", dir.privateKeyPath])
    #expect(listed.stdout.contains(" \(key.fingerprint) "), "\(listed.stdout)")
    #expect(
      key.authorizedKey.hasPrefix("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABB"))
  }

  /// ssh offers a key it can read the public half of, and signs at once with one it cannot.
  @Test func sshSignsWithThePEMKeyAtOnceAndOffersTheEd25519KeyFirst() throws {
    let rsa = try SSHKeyPair.generate(.rsa2048, comment: "run")
    let ed = try SSHKeyPair.generate(.ed25519, comment: "run")
    let ecdsa = try SSHKeyPair.generate(.ecdsaP256, comment: "run")
    let dir = try EphemeralKeyDirectory(keys: [rsa, ed, ecdsa], publicKeyFiles: false)
    defer { dir.wipe() }
    // A loopback listener that never answers: ssh reports how it loaded each identity once
    // connected, then gives up on the banner after ConnectTimeout.
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(listener) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(listener, $0, length) == 0 && listen(listener, 8) == 0 && getsockname(listener, $0, &length) == 0
      }
    }
    #expect(bound)
    let port = String(UInt16(bigEndian: address.sin_port))
    for (path, expected) in [
      (dir.privateKeyPath, "type -1"), (dir.privateKeyPath(for: .ecdsaP256), "type -1"),
      (dir.privateKeyPath(for: .ed25519), "type 3"),
    ] {
      let result = try runTool(
        "/usr/bin/ssh",
        [
          "-v", "-F", "/dev/null", "-i", path, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
          "-o", "ConnectTimeout=1", "-p", port, "127.0.0.1", "true",
        ])
      #expect(result.stderr.contains("identity file \(path) \(expected)"), "\(result.stderr)")
    }
  }

  @Test func descriptionHidesPrivateMaterial() throws {
    let key = try SSHKeyPair(ed25519Seed: Array(repeating: 7, count: 32))
    #expect(key.description == "SSHKeyPair(ed25519, \(key.fingerprint))")
    #expect(throws: KeyError.self) { try SSHKeyPair(ed25519Seed: [1, 2, 3]) }
  }

  @Test func keyTypesParse() {
    #expect(KeyType(parsing: "rsa") == .rsa2048)
    #expect(KeyType(parsing: "RSA4096") == .rsa4096)
    #expect(KeyType(parsing: "ecdsa") == .ecdsaP256)
    #expect(KeyType(parsing: "ecdsa-p256") == .ecdsaP256)
    #expect(KeyType(parsing: "dsa") == nil)
  }
}
