import Foundation
import SixtyKeys
import Testing

/// A 0700 temporary directory for one test, removed by `remove()`.
struct CertificateScratch {
  let path: String

  init() throws { path = try temporaryDirectory() }

  @discardableResult
  func write(_ name: String, _ text: String) throws -> String {
    try write(name, bytes: Array(text.utf8))
  }

  @discardableResult
  func write(_ name: String, bytes: [UInt8]) throws -> String {
    let file = path + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: file))
    return file
  }

  func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// ssh-keygen with times printed in UTC.
func keygenUTC(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
  try runTool("/usr/bin/env", ["TZ=UTC", sshKeygen] + arguments)
}

/// A user certificate request for `subject` with the usual test fields.
func certificateRequest(
  for subject: SSHKeyPair, serial: UInt64 = 1_234_567_890_123, validAfter: UInt64 = 1_700_000_000,
  validBefore: UInt64 = 1_700_086_400,
  criticalOptions: [OpenSSHCertificateOption] = [
    .sourceAddress(["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]), .forceCommand("/usr/bin/uptime"),
  ],
  extensions: [OpenSSHCertificateOption] = [.permitPTY, .permitPortForwarding]
) throws -> OpenSSHCertificateRequest {
  OpenSSHCertificateRequest(
    subject: try OpenSSHPublicKey.parseStrict(subject.publicKeyLine), serial: serial,
    keyID: "alice@sixty-run-42", principals: ["alice", "deploy"], validAfter: validAfter,
    validBefore: validBefore, criticalOptions: criticalOptions, extensions: extensions)
}

@Suite struct OpenSSHCertificateTests {
  /// OpenSSH's names for a key type: the certificate's `Public key:` and the CA's `Signing CA:`.
  static func openSSHNames(_ type: KeyType) -> (key: String, signature: String) {
    switch type {
    case .ed25519: ("ED25519", "ssh-ed25519")
    case .ecdsaP256: ("ECDSA", "ecdsa-sha2-nistp256")
    case .rsa2048, .rsa4096: ("RSA", "rsa-sha2-512")
    }
  }

  static let subjectTypes: [KeyType] = [.ed25519, .ecdsaP256, .rsa2048]

  @Test(arguments: subjectTypes, [KeyType.ed25519, .ecdsaP256])
  func sshKeygenReadsTheCertificate(subjectType: KeyType, caType: KeyType) throws {
    let subject = try SSHKeyPair.generate(subjectType, comment: "alice@laptop")
    let ca = try SSHKeyPair.generate(caType, comment: "sixty-user-ca")
    let certificate = try ca.signCertificate(try certificateRequest(for: subject))
    #expect(certificate.type == subjectType.sshName + "-cert-v01@openssh.com")
    #expect(certificate.nonce.count == 32)
    #expect(certificate.line.hasPrefix(certificate.type + " "))
    #expect(certificate.line.hasSuffix(" alice@sixty-run-42"))

    let dir = try CertificateScratch()
    defer { dir.remove() }
    let caPath = try dir.write("ca.pub", ca.trustedUserCAKeysLine + "\n")
    let caListed = try keygenUTC(["-l", "-E", "sha256", "-f", caPath])
    #expect(caListed.stdout.split(separator: " ").dropFirst().first == Substring(ca.fingerprint))
    let path = try dir.write("id-cert.pub", certificate.line + "\n")
    let shown = try keygenUTC(["-L", "-f", path])
    #expect(shown.status == 0, "\(shown.stderr)")
    let names = Self.openSSHNames(subjectType)
    let caNames = Self.openSSHNames(caType)
    // "Principals: ", "Critical Options: " and "Extensions: " end with a space.
    let expected = [
      "\(path):",
      "        Type: \(certificate.type) user certificate",
      "        Public key: \(names.key)-CERT \(subject.fingerprint)",
      "        Signing CA: \(caNames.key) \(ca.fingerprint) (using \(caNames.signature))",
      "        Key ID: \"alice@sixty-run-42\"",
      "        Serial: 1234567890123",
      "        Valid: from 2023-11-14T22:13:20 to 2023-11-15T22:13:20",
      "        Principals: ",
      "                alice",
      "                deploy",
      "        Critical Options: ",
      "                force-command /usr/bin/uptime",
      "                source-address 10.0.0.0/8,192.168.1.7/32,2001:db8::/32",
      "        Extensions: ",
      "                permit-port-forwarding",
      "                permit-pty",
      "",
    ].joined(separator: "\n")
    #expect(shown.stdout == expected)

    // The certificate's fingerprint is its key's.
    let listed = try keygenUTC(["-l", "-E", "sha256", "-f", path])
    #expect(listed.status == 0, "\(listed.stderr)")
    #expect(listed.stdout.split(separator: " ")[1] == Substring(subject.fingerprint))
  }

  /// ssh-keygen verifies the CA's signature when it parses a certificate: changing one byte of
  /// the signature, or of a signed field, makes it refuse the certificate.
  @Test(arguments: [KeyType.ed25519, .ecdsaP256, .rsa2048])
  func aDamagedCertificateIsRefused(caType: KeyType) throws {
    let ca = try SSHKeyPair.generate(caType)
    let subject = try SSHKeyPair.generate(.ed25519)
    let certificate = try ca.signCertificate(try certificateRequest(for: subject))
    let dir = try CertificateScratch()
    defer { dir.remove() }
    let good = try dir.write("good-cert.pub", certificate.line + "\n")
    let accepted = try keygenUTC(["-L", "-f", good])
    #expect(accepted.status == 0, "\(accepted.stderr)")
    #expect(accepted.stdout.contains("(using \(Self.openSSHNames(caType).signature))"))

    func damaged(at index: Int) -> String {
      var blob = certificate.blob
      blob[index] ^= 0x01
      return certificate.type + " " + Data(blob).base64EncodedString() + "\n"
    }
    // The last byte is inside the signature; the byte after the type and the nonce's length
    // is the nonce's first.
    let nonceStart = 4 + certificate.type.utf8.count + 4
    for (name, index) in [("signature", certificate.blob.count - 1), ("nonce", nonceStart)] {
      let path = try dir.write("\(name)-cert.pub", damaged(at: index))
      let refused = try keygenUTC(["-L", "-f", path])
      #expect(refused.status != 0, "a damaged \(name) was accepted: \(refused.stdout)")
      #expect(!refused.stdout.contains("Type:"))
    }
  }

  @Test func noOptionsNoExtensionsAndForeverAreShownAsOpenSSHShowsThem() throws {
    let ca = try SSHKeyPair.generate(.ed25519)
    let subject = try SSHKeyPair.generate(.ecdsaP256)
    let request = try certificateRequest(
      for: subject, serial: .max, validAfter: 0, validBefore: .max, criticalOptions: [], extensions: [])
    let certificate = try request.signed(by: ca)
    let dir = try CertificateScratch()
    defer { dir.remove() }
    let path = try dir.write("id-cert.pub", certificate.line + "\n")
    let shown = try keygenUTC(["-L", "-f", path])
    #expect(shown.status == 0, "\(shown.stderr)")
    #expect(shown.stdout.contains("\n        Serial: 18446744073709551615\n"))
    #expect(shown.stdout.contains("\n        Valid: forever\n"))
    #expect(shown.stdout.contains("\n        Critical Options: (none)\n"))
    #expect(shown.stdout.hasSuffix("\n        Extensions: (none)\n"))
  }

  /// Options are written sorted by name whatever the order given, with flags as empty data and
  /// values as a string inside a string.
  @Test func optionsAreSortedAndEncodedAsTheSpecSays() throws {
    let ca = try SSHKeyPair(ed25519Seed: Array(repeating: 7, count: 32))
    let subject = try SSHKeyPair(ed25519Seed: Array(repeating: 9, count: 32))
    let certificate = try certificateRequest(
      for: subject, criticalOptions: [.sourceAddress(["10.0.0.0/8"]), .verifyRequired],
      extensions: [.permitUserRC, .permitAgentForwarding, .noTouchRequired]
    ).signed(by: ca)
    func string(_ text: String) -> [UInt8] {
      let n = UInt32(text.utf8.count)
      return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + Array(text.utf8)
    }
    let sourceAddress = string("source-address") + [0, 0, 0, 14] + string("10.0.0.0/8")
    let critical = sourceAddress + string("verify-required") + [0, 0, 0, 0]
    let extensions =
      string("no-touch-required") + [0, 0, 0, 0] + string("permit-agent-forwarding") + [0, 0, 0, 0]
      + string("permit-user-rc") + [0, 0, 0, 0]
    let n = UInt32(critical.count)
    let m = UInt32(extensions.count)
    let expected =
      [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + critical
      + [UInt8(m >> 24), UInt8(m >> 16 & 0xFF), UInt8(m >> 8 & 0xFF), UInt8(m & 0xFF)] + extensions
      + [0, 0, 0, 0]  // reserved
      + [0, 0, 0, UInt8(ca.publicBlob.count)] + ca.publicBlob
    #expect(certificate.blob.firstRange(of: expected) != nil)
    // The whole: type, nonce, the subject's public fields, serial, type 1 (user).
    let head =
      string(certificate.type) + [0, 0, 0, 32] + certificate.nonce + subject.publicBlob.dropFirst(15)
    #expect(Array(certificate.blob.prefix(head.count)) == head)
    #expect(
      Array(certificate.blob[head.count..<(head.count + 12)]) == [
        0, 0, 0x01, 0x1F, 0x71, 0xFB, 0x04, 0xCB, 0, 0, 0, 1,
      ]
    )
  }

  @Test func eachSignatureHasAFreshNonce() throws {
    let ca = try SSHKeyPair.generate(.ed25519)
    let request = try certificateRequest(for: try SSHKeyPair.generate(.ed25519))
    let a = try request.signed(by: ca)
    let b = try request.signed(by: ca)
    #expect(a.nonce != b.nonce)
    #expect(a.blob != b.blob)
    #expect(a.fingerprint == b.fingerprint)
  }

  @Test func theCALines() throws {
    let ca = try SSHKeyPair.generate(.ed25519, comment: "sixty-ca")
    #expect(ca.trustedUserCAKeysLine == ca.publicKeyLine)
    #expect(try ca.certAuthorityLine() == "cert-authority " + ca.authorizedKey)
    #expect(
      try ca.certAuthorityLine(principals: ["alice", "deploy"])
        == "cert-authority,principals=\"alice,deploy\" " + ca.authorizedKey)
    #expect(throws: CertificateError.invalidPrincipal("a\"b", .doubleQuote)) {
      try ca.certAuthorityLine(principals: ["a\"b"])
    }
    #expect(throws: CertificateError.invalidPrincipal("a,b", .comma)) {
      try ca.certAuthorityLine(principals: ["a,b"])
    }
  }

  // MARK: - Invalid input

  static let subjectKey = try! SSHKeyPair(ed25519Seed: Array(repeating: 3, count: 32))
  static let caKey = try! SSHKeyPair(ed25519Seed: Array(repeating: 4, count: 32))

  static func request(
    principals: [String] = ["alice"], keyID: String = "alice", validAfter: UInt64 = 10,
    validBefore: UInt64 = 20,
    critical: [OpenSSHCertificateOption] = [], extensions: [OpenSSHCertificateOption] = [],
    comment: String? = nil
  ) -> OpenSSHCertificateRequest {
    OpenSSHCertificateRequest(
      subject: try! OpenSSHPublicKey.parseStrict(subjectKey.publicKeyLine), serial: 1, keyID: keyID,
      principals: principals, validAfter: validAfter, validBefore: validBefore, criticalOptions: critical,
      extensions: extensions, comment: comment)
  }

  @Test(arguments: [
    (request(principals: []), CertificateError.noPrincipals),
    (request(principals: ["al,ice"]), .invalidPrincipal("al,ice", .comma)),
    (request(principals: ["alice", "bob smith"]), .invalidPrincipal("bob smith", .space)),
    (request(principals: ["caf\u{E9}"]), .invalidPrincipal("caf\\u{E9}", .nonASCII(0xE9))),
    // One Character ("é"), two scalars: the combining accent is found.
    (request(principals: ["cafe\u{301}"]), .invalidPrincipal("cafe\\u{301}", .nonASCII(0x301))),
    (request(principals: ["alice\nroot"]), .invalidPrincipal("alice\\u{A}root", .controlCharacter(0x0A))),
    (request(principals: ["root\0"]), .invalidPrincipal("root\\u{0}", .controlCharacter(0))),
    (request(principals: [""]), .invalidPrincipal("", .empty)),
    (
      request(principals: [String(repeating: "a", count: 256)]),
      .invalidPrincipal(String(repeating: "a", count: 64) + "…", .tooLong(bytes: 256, limit: 255))
    ),
    (request(principals: ["alice", "alice"]), .duplicatePrincipal("alice")),
    (request(principals: Array(repeating: "a", count: 257)), .tooManyPrincipals(257)),
    (request(keyID: "alice,root"), .invalidKeyID("alice,root", .comma)),
    (request(keyID: "alice\u{7F}"), .invalidKeyID("alice\\u{7F}", .controlCharacter(0x7F))),
    (request(keyID: ""), .invalidKeyID("", .empty)),
    (request(validAfter: 20, validBefore: 20), .invalidValidity(validAfter: 20, validBefore: 20)),
    (request(validAfter: 30, validBefore: 20), .invalidValidity(validAfter: 30, validBefore: 20)),
    (
      request(critical: [.sourceAddress(["10.0.0.1/8"])]),
      .invalidOptionValue(
        name: "source-address", value: "10.0.0.1/8",
        expected:
          "a comma-separated list of IPv4 or IPv6 addresses, each with an optional prefix length and no host bits set (first bad entry: '10.0.0.1/8')"
      )
    ),
    (
      request(critical: [.forceCommand("a"), .forceCommand("b")]),
      .duplicateOption("force-command", critical: true)
    ),
    (
      request(extensions: [OpenSSHCertificateOption(name: "permit-pty", value: "yes")]),
      .invalidOptionValue(name: "permit-pty", value: "yes", expected: "no value: it is a flag")
    ),
    (request(extensions: [.flag("permit pty")]), .invalidOptionName("permit pty", critical: false, .space)),
    (request(comment: "ok\ncomment"), .invalidComment("ok\\u{A}comment", .controlCharacter(0x0A))),
  ])
  func invalidRequestsAreRefused(request: OpenSSHCertificateRequest, expected: CertificateError) {
    #expect(throws: expected) { try request.validate() }
    #expect(throws: expected) { try request.signed(by: Self.caKey) }
  }

  @Test(arguments: [
    "10.0.0.0/8", "192.168.1.7", "192.168.1.7/32", "0.0.0.0/0", "2001:db8::/32", "::1", "fe80::/10",
    "10.0.0.0/8,172.16.0.0/12",
  ])
  func validSourceAddressesAreAccepted(list: String) {
    #expect(throws: Never.self) {
      try Self.request(critical: [OpenSSHCertificateOption(name: "source-address", value: list)]).validate()
    }
  }

  @Test(arguments: [
    "", "10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0", "example.com",
    "10.0.0.0 /8", "10.0.0.0/8\0,1.2.3.4", "2001:db8::1/32", "::/129", "10.0.0.0/+8", "300.0.0.0/8",
  ])
  func invalidSourceAddressesAreRefused(list: String) {
    #expect(throws: CertificateError.self) {
      try Self.request(critical: [OpenSSHCertificateOption(name: "source-address", value: list)]).validate()
    }
  }

  @Test func messagesAreSentencesNamingTheValue() {
    let cases: [(CertificateError, String)] = [
      (
        .invalidPrincipal("al,ice", .comma),
        "The principal 'al,ice' is not allowed: it contains a comma; expected 1 to 255 printable ASCII characters other than spaces and commas."
      ),
      (
        .invalidPrincipal("caf\\u{E9}", .nonASCII(0xE9)),
        "The principal 'caf\\u{E9}' is not allowed: it contains the non-ASCII character U+00E9; expected 1 to 255 printable ASCII characters other than spaces and commas."
      ),
      (
        .noPrincipals,
        "The certificate has no principals; expected at least one user name (an empty list would make it valid for every user)."
      ),
      (
        .invalidValidity(validAfter: 30, validBefore: 20),
        "The validity period runs from 30 (valid_after) to 20 (valid_before); expected valid_after to be earlier than valid_before."
      ),
    ]
    for (error, text) in cases { #expect(error.description == text) }
    let all: [CertificateError] = [
      .unsupportedSubjectKey("ssh-dss"), .malformedSubjectKey("x"), .tooManyPrincipals(300),
      .duplicatePrincipal("a"), .invalidKeyID("a b", .space), .invalidOptionName("x", critical: true, .empty),
      .duplicateOption("x", critical: false), .invalidOptionValue(name: "x", value: nil, expected: "a value"),
      .invalidComment("x", .controlCharacter(9)), .signingFailed("x"),
    ]
    for error in all {
      #expect(error.description.first?.isUppercase == true && error.description.hasSuffix("."), "\(error)")
      #expect(error.description.contains("expected") || error.description.contains("could not"), "\(error)")
    }
  }
}
