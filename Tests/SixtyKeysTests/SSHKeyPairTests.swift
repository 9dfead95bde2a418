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

  @Test(arguments: ["ed25519", "rsa"])
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

  @Test func descriptionHidesPrivateMaterial() throws {
    let key = try SSHKeyPair(ed25519Seed: Array(repeating: 7, count: 32))
    #expect(key.description == "SSHKeyPair(ed25519, \(key.fingerprint))")
    #expect(throws: KeyError.self) { try SSHKeyPair(ed25519Seed: [1, 2, 3]) }
  }

  @Test func keyTypesParse() {
    #expect(KeyType(parsing: "rsa") == .rsa2048)
    #expect(KeyType(parsing: "RSA4096") == .rsa4096)
    #expect(KeyType(parsing: "dsa") == nil)
  }
}
