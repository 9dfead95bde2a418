import Foundation
import SixtyKeys
import Testing

@Suite struct KeyRevocationListTests {
  /// Certificates for one subject key under `ca`, one per serial, written as `cert-SERIAL.pub`.
  static func writeCertificates(
    _ serials: [UInt64], ca: SSHKeyPair, subject: SSHKeyPair, in dir: CertificateScratch,
    prefix: String = "cert"
  ) throws -> [UInt64: String] {
    var paths: [UInt64: String] = [:]
    for serial in serials {
      let certificate = try ca.signCertificate(
        try certificateRequest(for: subject, serial: serial, criticalOptions: [], extensions: [.permitPTY]))
      paths[serial] = try dir.write("\(prefix)-\(serial).pub", certificate.line + "\n")
    }
    return paths
  }

  /// `ssh-keygen -Q -f krl path`: true when it reports the key revoked.
  static func isRevoked(_ path: String, krl: String) throws -> Bool {
    let result = try keygenUTC(["-Q", "-f", krl, path])
    if result.status == 0 {
      #expect(result.stdout.hasSuffix(": ok\n"), "\(result.stdout)")
      return false
    }
    #expect(result.stdout.hasSuffix(": REVOKED\n"), "\(result.stdout) \(result.stderr)")
    return true
  }

  /// `ssh-keygen -Q -l -f krl`: the KRL as ssh-keygen reads it.
  static func listing(_ krl: String) throws -> String {
    let result = try keygenUTC(["-Q", "-l", "-f", krl])
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdout
  }

  /// A listing without its header (version, date, comment).
  static func body(_ listing: String) -> String {
    listing.split(separator: "\n", omittingEmptySubsequences: false).filter {
      !$0.hasPrefix("# KRL version") && !$0.hasPrefix("# Generated at") && !$0.hasPrefix("# Comment:")
    }.joined(separator: "\n")
  }

  @Test(arguments: [KeyType.ed25519, .ecdsaP256])
  func revokedSerialsAreRevokedAndOthersAreNot(caType: KeyType) throws {
    let ca = try SSHKeyPair.generate(caType, comment: "ca")
    let otherCA = try SSHKeyPair.generate(.ed25519, comment: "other-ca")
    let subject = try SSHKeyPair.generate(.ed25519)
    var krl = try KeyRevocationList(version: 3, generatedDate: 1_700_000_000, comment: "sixty test")
    try krl.revokeCertificates(serials: [11, 9, 7, 10, 9], issuedBy: ca)
    #expect(krl.revokedSerialRanges(caPublicKeyBlob: ca.publicBlob) == [7...7, 9...11])

    let dir = try CertificateScratch()
    defer { dir.remove() }
    let krlPath = try dir.write("krl", bytes: krl.encoded())
    let certificates = try Self.writeCertificates(Array(6...12), ca: ca, subject: subject, in: dir)
    for serial in 6...12 as ClosedRange<UInt64> {
      let revoked = try Self.isRevoked(certificates[serial]!, krl: krlPath)
      #expect(revoked == [7, 9, 10, 11].contains(serial), "serial \(serial)")
    }
    // The same serial from another CA is not revoked, nor is the plain key.
    let other = try Self.writeCertificates([9], ca: otherCA, subject: subject, in: dir, prefix: "other")
    #expect(try !Self.isRevoked(other[9]!, krl: krlPath))
    let plain = try dir.write("subject.pub", subject.publicKeyLine + "\n")
    #expect(try !Self.isRevoked(plain, krl: krlPath))

    // ssh-keygen reads the same revocations from our file as from its own, made from a spec.
    let caPath = try dir.write("ca.pub", ca.publicKeyLine + "\n")
    let spec = try dir.write("spec", "serial: 7\nserial: 9\nserial: 10\nserial: 11\n")
    let theirs = dir.path + "/theirs.krl"
    let made = try keygenUTC(["-k", "-f", theirs, "-s", caPath, spec])
    #expect(made.status == 0, "\(made.stderr)")
    let ours = try Self.listing(krlPath)
    #expect(ours.hasPrefix("# KRL version 3\n# Generated at 20231114T221320\n# Comment: sixty test\n"))
    #expect(ours.contains("\n# CA key \(caType.sshName) \(ca.fingerprint)\nserial: 7\nserial: 9-11\n"))
    #expect(Self.body(ours) == Self.body(try Self.listing(theirs)))
  }

  /// A certificate of ours is also revoked by ssh-keygen's own KRL for its CA and serial: the
  /// signature key inside the certificate is the CA key ssh-keygen reads from ca.pub.
  @Test(arguments: [KeyType.ed25519, .ecdsaP256])
  func sshKeygensOwnKRLRevokesOurCertificate(caType: KeyType) throws {
    let ca = try SSHKeyPair.generate(caType)
    let dir = try CertificateScratch()
    defer { dir.remove() }
    let caPath = try dir.write("ca.pub", ca.publicKeyLine + "\n")
    let certificates = try Self.writeCertificates(
      [41, 42], ca: ca, subject: try SSHKeyPair.generate(.rsa2048), in: dir)
    let spec = try dir.write("spec", "serial: 42\n")
    let krl = dir.path + "/krl"
    let made = try keygenUTC(["-k", "-f", krl, "-s", caPath, spec])
    #expect(made.status == 0, "\(made.stderr)")
    #expect(try Self.isRevoked(certificates[42]!, krl: krl))
    #expect(try !Self.isRevoked(certificates[41]!, krl: krl))
  }

  @Test func rangesAndTheLargestSerial() throws {
    let ca = try SSHKeyPair.generate(.ed25519)
    let subject = try SSHKeyPair.generate(.ecdsaP256)
    var krl = try KeyRevocationList(version: 1, generatedDate: 0)
    try krl.revokeCertificates(serialsIn: 100...200, issuedBy: ca)
    try krl.revokeCertificates(serialsIn: 150...250, issuedBy: ca)
    try krl.revokeCertificates(serials: [251, 253], issuedBy: ca)
    try krl.revokeCertificates(serialsIn: (.max - 1)...(.max), issuedBy: ca)
    try krl.revokeCertificates(serials: [.max], issuedBy: ca)
    #expect(
      krl.revokedSerialRanges(caPublicKeyBlob: ca.publicBlob) == [100...251, 253...253, (.max - 1)...(.max)])

    let dir = try CertificateScratch()
    defer { dir.remove() }
    let krlPath = try dir.write("krl", bytes: krl.encoded())
    let serials: [UInt64] = [99, 100, 175, 251, 252, 253, 254, .max - 2, .max - 1, .max]
    let certificates = try Self.writeCertificates(serials, ca: ca, subject: subject, in: dir)
    let revoked: Set<UInt64> = [100, 175, 251, 253, .max - 1, .max]
    for serial in serials {
      #expect(
        try Self.isRevoked(certificates[serial]!, krl: krlPath) == revoked.contains(serial), "\(serial)")
    }
    #expect(
      try Self.listing(krlPath).hasSuffix(
        "\nserial: 100-251\nserial: 253\nserial: 18446744073709551614-18446744073709551615\n"))
  }

  /// Plain keys revoked by SHA-256: the key itself and every certificate of it; a revoked CA key
  /// revokes every certificate it signed.
  @Test func keysRevokedBySHA256() throws {
    let ca = try SSHKeyPair.generate(.ed25519)
    let revokedCA = try SSHKeyPair.generate(.ecdsaP256)
    let revokedKey = try SSHKeyPair.generate(.rsa2048)
    let goodKey = try SSHKeyPair.generate(.ed25519)
    var krl = try KeyRevocationList(version: 2, generatedDate: 1_700_000_000)
    krl.revokeKey(try OpenSSHPublicKey.parseStrict(revokedKey.publicKeyLine))
    krl.revokeKey(revokedCA)
    krl.revokeKey(revokedCA)
    #expect(krl.revokedKeyHashes.count == 2)

    let dir = try CertificateScratch()
    defer { dir.remove() }
    let krlPath = try dir.write("krl", bytes: krl.encoded())
    let revokedPlain = try dir.write("revoked.pub", revokedKey.publicKeyLine + "\n")
    let goodPlain = try dir.write("good.pub", goodKey.publicKeyLine + "\n")
    #expect(try Self.isRevoked(revokedPlain, krl: krlPath))
    #expect(try !Self.isRevoked(goodPlain, krl: krlPath))
    let ofRevokedKey = try Self.writeCertificates([5], ca: ca, subject: revokedKey, in: dir, prefix: "a")
    let ofGoodKey = try Self.writeCertificates([5], ca: ca, subject: goodKey, in: dir, prefix: "b")
    let byRevokedCA = try Self.writeCertificates([5], ca: revokedCA, subject: goodKey, in: dir, prefix: "c")
    #expect(try Self.isRevoked(ofRevokedKey[5]!, krl: krlPath))
    #expect(try !Self.isRevoked(ofGoodKey[5]!, krl: krlPath))
    #expect(try Self.isRevoked(byRevokedCA[5]!, krl: krlPath))

    // ssh-keygen lists the same hashes from a spec naming the fingerprints.
    let spec = try dir.write("spec", "hash: \(revokedKey.fingerprint)\nhash: \(revokedCA.fingerprint)\n")
    let theirs = dir.path + "/theirs.krl"
    let made = try keygenUTC(["-k", "-f", theirs, spec])
    #expect(made.status == 0, "\(made.stderr)")
    #expect(Self.body(try Self.listing(krlPath)) == Self.body(try Self.listing(theirs)))
  }

  @Test func theEncodingIsDeterministicAndAsTheSpecSays() throws {
    let ca = try SSHKeyPair(ed25519Seed: Array(repeating: 5, count: 32))
    var a = try KeyRevocationList(version: 9, generatedDate: 0x0102_0304_0506_0708, comment: "c")
    try a.revokeCertificates(serials: [7, 9, 10, 11], issuedBy: ca)
    var b = try KeyRevocationList(version: 9, generatedDate: 0x0102_0304_0506_0708, comment: "c")
    try b.revokeCertificates(serials: [11, 10], issuedBy: try OpenSSHPublicKey.parseStrict(ca.publicKeyLine))
    try b.revokeCertificates(serials: [9, 7, 7], issuedBy: ca)
    #expect(a.encoded() == b.encoded())

    func u32(_ n: Int) -> [UInt8] {
      [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
    }
    func u64(_ n: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(n >> (8 * UInt64($0)) & 0xFF) } }
    func string(_ b: [UInt8]) -> [UInt8] { u32(b.count) + b }
    let header =
      Array("SSHKRL\n".utf8) + [0] + u32(1) + u64(9) + u64(0x0102_0304_0506_0708) + u64(0) + string([])
      + string(Array("c".utf8))
    let subsections = [0x20] + string(u64(7)) + [0x21] + string(u64(9) + u64(11))
    let section = string(ca.publicBlob) + string([]) + subsections
    #expect(a.encoded() == header + [1] + string(section))
  }

  @Test func serialZeroAndBadCommentsAreRefused() throws {
    let ca = try SSHKeyPair.generate(.ed25519)
    var krl = try KeyRevocationList(version: 1, generatedDate: 0)
    #expect(throws: KRLError.serialZero) { try krl.revokeCertificates(serials: [1, 0], issuedBy: ca) }
    #expect(throws: KRLError.serialZero) { try krl.revokeCertificates(serialsIn: 0...5, issuedBy: ca) }
    #expect(krl.revokedSerialRanges(caPublicKeyBlob: ca.publicBlob).isEmpty)
    #expect(throws: KRLError.invalidComment("a\\u{0}b", .controlCharacter(0))) {
      try KeyRevocationList(version: 1, generatedDate: 0, comment: "a\0b")
    }
    #expect(
      KRLError.serialZero.description
        == "The serial 0 cannot be revoked: OpenSSH treats 0 as 'no serial' and rejects a KRL that lists it; expected serials from 1 to 18446744073709551615 (revoke such certificates by their CA or key instead)."
    )
  }

  @Test func anEmptyListRevokesNothing() throws {
    let ca = try SSHKeyPair.generate(.ed25519)
    let dir = try CertificateScratch()
    defer { dir.remove() }
    let krl = try dir.write("krl", bytes: try KeyRevocationList(version: 1, generatedDate: 0).encoded())
    let certificates = try Self.writeCertificates([1], ca: ca, subject: try SSHKeyPair.generate(), in: dir)
    #expect(try !Self.isRevoked(certificates[1]!, krl: krl))
  }
}
