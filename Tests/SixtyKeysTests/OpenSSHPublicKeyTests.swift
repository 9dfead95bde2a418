import Foundation
import SixtyKeys
import Testing

@Suite struct OpenSSHPublicKeyTests {
  static let ed = try! SSHKeyPair(ed25519Seed: Array(repeating: 1, count: 32), comment: "ops@laptop")
  static let rsa = try! SSHKeyPair.generate(.rsa2048)
  static let ecdsa = try! SSHKeyPair.generate(.ecdsaP256, comment: "ops@laptop")

  @Test func acceptsValidKeys() throws {
    let parsed = try OpenSSHPublicKey.parseStrict(Self.ed.publicKeyLine)
    #expect(parsed.type == "ssh-ed25519")
    #expect(parsed.comment == "ops@laptop")
    #expect(parsed.fingerprint == Self.ed.fingerprint)
    #expect(parsed.authorizedKeysLine == Self.ed.authorizedKey)
    let rsa = try OpenSSHPublicKey.parseStrict(Self.rsa.authorizedKey)
    #expect(rsa.bits == 2048)
    let ecdsa = try OpenSSHPublicKey.parseStrict(Self.ecdsa.publicKeyLine)
    #expect(ecdsa.type == "ecdsa-sha2-nistp256" && ecdsa.bits == 256)
    #expect(ecdsa.fingerprint == Self.ecdsa.fingerprint)
    #expect(ecdsa.authorizedKeysLine == Self.ecdsa.authorizedKey)
  }

  /// An ecdsa-sha2-nistp256 blob with the given curve name and point.
  static func ecdsaBlob(curve: String = "nistp256", point: [UInt8]) -> String {
    var blob: [UInt8] = []
    func string(_ b: [UInt8]) {
      let n = UInt32(b.count)
      blob += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + b
    }
    string(Array("ecdsa-sha2-nistp256".utf8))
    string(Array(curve.utf8))
    string(point)
    return "ecdsa-sha2-nistp256 " + Data(blob).base64EncodedString()
  }

  static let ecdsaPoint: [UInt8] = {
    let blob = [UInt8](Data(base64Encoded: String(ecdsa.authorizedKey.split(separator: " ")[1]))!)
    return Array(blob.suffix(65))
  }()

  @Test func rejectsECDSAKeysOffTheCurveOrOnAnotherCurve() {
    #expect(throws: Never.self) { try OpenSSHPublicKey.parseStrict(Self.ecdsaBlob(point: Self.ecdsaPoint)) }
    var offCurve = Self.ecdsaPoint
    offCurve[64] ^= 1
    #expect(
      throws: OpenSSHPublicKey.ParseError.malformedBlob("the ECDSA key is not an uncompressed point on P-256")
    ) {
      try OpenSSHPublicKey.parseStrict(Self.ecdsaBlob(point: offCurve))
    }
    #expect(
      throws: OpenSSHPublicKey.ParseError.malformedBlob("the ECDSA key is not an uncompressed point on P-256")
    ) {
      try OpenSSHPublicKey.parseStrict(Self.ecdsaBlob(point: [2] + Self.ecdsaPoint[1...32]))
    }
    #expect(
      throws: OpenSSHPublicKey.ParseError.malformedBlob(
        "an ecdsa-sha2-nistp256 key must name the curve nistp256")
    ) {
      try OpenSSHPublicKey.parseStrict(Self.ecdsaBlob(curve: "nistp384", point: Self.ecdsaPoint))
    }
  }

  static func rsaBlob(bits: Int, exponent: [UInt8] = [1, 0, 1]) -> String {
    // A syntactically valid RSA public blob with an n of the given size.
    var blob: [UInt8] = []
    func string(_ b: [UInt8]) {
      let n = UInt32(b.count)
      blob += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + b
    }
    string(Array("ssh-rsa".utf8))
    string(exponent)
    string([0] + [0xC1] + [UInt8](repeating: 0x55, count: bits / 8 - 1))
    return "ssh-rsa " + Data(blob).base64EncodedString()
  }

  static let edBase64 = String(ed.authorizedKey.dropFirst("ssh-ed25519 ".count))

  @Test(arguments: [
    ("", OpenSSHPublicKey.ParseError.empty),
    ("command=\"/bin/sh\" \(edBase64)", .optionsPrefix("command=\"/bin/sh\"")),
    ("from=\"*\",no-pty ssh-ed25519 \(edBase64)", .optionsPrefix("from=\"*\",no-pty")),
    ("restrict ssh-ed25519 \(edBase64)", .optionsPrefix("restrict")),
    ("ssh-ed25519 \(edBase64)\nssh-ed25519 \(edBase64)", .controlCharacter),
    ("ssh-ed25519 \(edBase64)\r", .controlCharacter),
    ("ssh-ed25519 \(edBase64) a\u{0}b", .controlCharacter),
    ("ssh-ed25519 \(edBase64) comment\u{1b}[31m", .controlCharacter),
    ("ssh-ed25519 \(edBase64) ssh-ed25519 \(edBase64)", .malformedBlob("a second key follows the first")),
    ("ecdsa-sha2-nistp384 AAAA", .unsupportedType("ecdsa-sha2-nistp384")),
    ("ssh-dss AAAA", .unsupportedType("ssh-dss")),
    ("ssh-ed25519-cert-v01@openssh.com AAAA", .unsupportedType("ssh-ed25519-cert-v01@ope…")),
    ("ssh-ed25519", .missingKeyData),
    ("ssh-ed25519 ", .missingKeyData),
    ("ssh-ed25519 !!!!", .badBase64),
    ("ssh-ed25519 \(edBase64.dropLast())", .badBase64),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==", .malformedBlob("an Ed25519 key must be 32 bytes")),
    ("ssh-rsa \(edBase64)", .typeMismatch(outer: "ssh-rsa", inner: "ssh-ed25519")),
    (rsaBlob(bits: 1024), .rsaTooSmall(1024)),
    (String(repeating: "A", count: 9000), .tooLong(9000)),
  ])
  func rejects(input: String, expected: OpenSSHPublicKey.ParseError) {
    #expect(throws: expected) { try OpenSSHPublicKey.parseStrict(input) }
  }

  @Test func rejectsTrailingBytes() throws {
    var blob = Array(Data(base64Encoded: Self.edBase64)!)
    blob.append(0)
    #expect(throws: OpenSSHPublicKey.ParseError.malformedBlob("unexpected bytes after the key")) {
      try OpenSSHPublicKey.parseStrict("ssh-ed25519 " + Data(blob).base64EncodedString())
    }
  }

  /// e = 3 invites the low-exponent attacks on RSA; an even e is no RSA key at all. The
  /// exponents are mpints: big-endian, minimal, with a 0 byte before a high bit.
  @Test func refusesRSAExponentsBelow65537OrEven() throws {
    let refused: [([UInt8], String)] = [
      ([3], "3"), ([1], "1"), ([0x01, 0x00, 0x00], "65536"), ([0x01, 0x00, 0x02], "65538"),
      ([0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], "72057594037927936"),
    ]
    for (exponent, decimal) in refused {
      do {
        _ = try OpenSSHPublicKey.parseStrict(Self.rsaBlob(bits: 2048, exponent: exponent))
        Issue.record("the exponent \(decimal) was accepted")
      } catch {
        #expect(
          error.description
            == "The RSA key's public exponent is \(decimal); expected an odd number of at least 65537 (ssh-keygen uses 65537).",
          "\(decimal)")
      }
    }
    for exponent: [UInt8] in [[0x01, 0x00, 0x01], [0x01, 0x00, 0x03], [0x00, 0x80, 0x00, 0x00, 0x01]] {
      #expect(throws: Never.self) {
        try OpenSSHPublicKey.parseStrict(Self.rsaBlob(bits: 2048, exponent: exponent))
      }
    }
  }

  @Test func messagesAreSentences() {
    #expect(
      OpenSSHPublicKey.ParseError.optionsPrefix("command=x").description
        == "The public key has an options prefix ('command=x'); expected a bare 'ssh-ed25519', 'ecdsa-sha2-nistp256' or 'ssh-rsa' key."
    )
  }
}
