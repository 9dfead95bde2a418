import Crypto
import Foundation
import _CryptoExtras

/// An ephemeral key pair with its OpenSSH encodings. The private half never appears in
/// `description`, logs or errors.
public struct SSHKeyPair: Sendable, CustomStringConvertible {
  enum Material: Sendable {
    case ed25519(seed: [UInt8], publicKey: [UInt8])
    /// n, e, d, iqmp, p, q as unsigned big-endian integers.
    case rsa(n: [UInt8], e: [UInt8], d: [UInt8], iqmp: [UInt8], p: [UInt8], q: [UInt8])
    /// The private scalar (32 bytes) and the uncompressed public point (65 bytes, `04 X Y`).
    case ecdsaP256(scalar: [UInt8], point: [UInt8])
  }

  let material: Material
  public let type: KeyType
  public let comment: String

  /// Generates a new key pair.
  /// - Throws: when the system cannot produce randomness or RSA generation fails.
  public static func generate(_ type: KeyType = .ed25519, comment: String = "sixty") throws -> SSHKeyPair {
    switch type {
    case .ed25519:
      return try SSHKeyPair(
        ed25519Seed: Array(Curve25519.Signing.PrivateKey().rawRepresentation), comment: comment)
    case .rsa2048, .rsa4096:
      let key = try _RSA.Signing.PrivateKey(keySize: type == .rsa2048 ? .bits2048 : .bits4096)
      guard let ints = DER.rsaPrivateKeyIntegers(Array(key.derRepresentation)) else {
        throw KeyError.generation("the RSA private key could not be decoded")
      }
      // version, n, e, d, p, q, dp, dq, qinv
      return SSHKeyPair(
        material: .rsa(n: ints[1], e: ints[2], d: ints[3], iqmp: ints[8], p: ints[4], q: ints[5]), type: type,
        comment: comment)
    case .ecdsaP256:
      return try SSHKeyPair(
        ecdsaP256Scalar: Array(P256.Signing.PrivateKey().rawRepresentation), comment: comment)
    }
  }

  /// A P-256 pair from its 32-byte private scalar (tests and re-reading files).
  public init(ecdsaP256Scalar scalar: [UInt8], comment: String = "sixty") throws {
    let key = try Self.privateKey(
      scalar, P256.Signing.PrivateKey.init(rawRepresentation:),
      else: "a P-256 private scalar must be 32 bytes and below the group order")
    let point = Array(key.publicKey.x963Representation)
    self.init(material: .ecdsaP256(scalar: scalar, point: point), type: .ecdsaP256, comment: comment)
  }

  /// An Ed25519 pair from a 32-byte seed (tests and re-reading files).
  public init(ed25519Seed seed: [UInt8], comment: String = "sixty") throws {
    let key = try Self.privateKey(
      seed, Curve25519.Signing.PrivateKey.init(rawRepresentation:), else: "an Ed25519 seed must be 32 bytes")
    let publicKey = Array(key.publicKey.rawRepresentation)
    self.init(material: .ed25519(seed: seed, publicKey: publicKey), type: .ed25519, comment: comment)
  }

  /// The private key whose 32 raw bytes are `raw`, if the curve accepts them; else `problem`.
  static func privateKey<Key>(_ raw: [UInt8], _ make: ([UInt8]) throws -> Key, else problem: String) throws
    -> Key
  {
    guard raw.count == 32, let key = try? make(raw) else { throw KeyError.generation(problem) }
    return key
  }

  init(material: Material, type: KeyType, comment: String) {
    self.material = material
    self.type = type
    self.comment = comment
  }

  public var description: String { "SSHKeyPair(\(type), \(fingerprint))" }

  /// The Ed25519 seed, for an in-process SSH client that signs with it (nil for other types).
  public var ed25519Seed: [UInt8]? {
    if case .ed25519(let seed, _) = material { return seed }
    return nil
  }

  /// The ECDSA P-256 private scalar, for an in-process SSH client (nil for other types).
  public var ecdsaP256Scalar: [UInt8]? {
    if case .ecdsaP256(let scalar, _) = material { return scalar }
    return nil
  }

  /// The public key blob (the base64 part of the public key line, decoded).
  public var publicBlob: [UInt8] {
    var w = SSHWriter()
    switch material {
    case .ed25519(_, let publicKey):
      w.string("ssh-ed25519")
      w.string(publicKey)
    case .rsa(let n, let e, _, _, _, _):
      w.string("ssh-rsa")
      w.mpint(e)
      w.mpint(n)
    case .ecdsaP256(_, let point):
      w.string("ecdsa-sha2-nistp256")
      w.string("nistp256")
      w.string(point)
    }
    return w.bytes
  }

  /// `ssh-ed25519 AAAA… comment`, as in a `.pub` file (without the newline).
  public var publicKeyLine: String {
    "\(type.sshName) \(Data(publicBlob).base64EncodedString())" + (comment.isEmpty ? "" : " \(comment)")
  }

  /// The line without a comment: what is pushed and what authorized_keys receives.
  public var authorizedKey: String { "\(type.sshName) \(Data(publicBlob).base64EncodedString())" }

  /// `SHA256:…`, as `ssh-keygen -lf` prints it.
  public var fingerprint: String { Fingerprint.sha256(publicBlob) }

  /// The unencrypted `openssh-key-v1` private key file, PEM-armoured like ssh-keygen writes it.
  /// - Parameter checkInt: the random check value; fixed only by tests.
  public func privateKeyFile(checkInt: UInt32 = UInt32.random(in: .min ... .max)) -> [UInt8] {
    var section = SSHWriter()
    section.uint32(checkInt)
    section.uint32(checkInt)
    switch material {
    case .ed25519(let seed, let publicKey):
      section.string("ssh-ed25519")
      section.string(publicKey)
      section.string(seed + publicKey)
    case .rsa(let n, let e, let d, let iqmp, let p, let q):
      section.string("ssh-rsa")
      section.mpint(n)
      section.mpint(e)
      section.mpint(d)
      section.mpint(iqmp)
      section.mpint(p)
      section.mpint(q)
    case .ecdsaP256(let scalar, let point):
      section.string("ecdsa-sha2-nistp256")
      section.string("nistp256")
      section.string(point)
      section.mpint(scalar)
    }
    section.string(comment)
    var pad: UInt8 = 1
    while section.bytes.count % 8 != 0 {
      section.bytes.append(pad)
      pad += 1
    }
    var file = SSHWriter()
    file.bytes.append(contentsOf: Array("openssh-key-v1".utf8) + [0])
    file.string("none")
    file.string("none")
    file.string([UInt8]())
    file.uint32(1)
    file.string(publicBlob)
    file.string(section.bytes)
    var text = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    let base64 = Array(Data(file.bytes).base64EncodedString().utf8)
    var index = 0
    while index < base64.count {
      text += String(decoding: base64[index..<min(index + 70, base64.count)], as: UTF8.self) + "\n"
      index += 70
    }
    text += "-----END OPENSSH PRIVATE KEY-----\n"
    // Overwrite the intermediate buffer holding private material before it is released.
    section.bytes.withUnsafeMutableBufferPointer { $0.initialize(repeating: 0) }
    return Array(text.utf8)
  }

  /// The private key file ssh is given. Ed25519: the `openssh-key-v1` file. RSA: PKCS#1 PEM
  /// (`BEGIN RSA PRIVATE KEY`); ECDSA: PKCS#8 PEM (`BEGIN PRIVATE KEY`). ssh cannot read the
  /// public half out of a PEM file, so with no `.pub` beside it ssh signs with the key at once
  /// instead of first asking the server whether it would accept the key: the host runs its
  /// AuthorizedKeysCommand once per login, not twice.
  /// - Throws: `KeyError.generation` when the RSA integers do not make a valid key.
  public func sshPrivateKeyFile() throws -> [UInt8] {
    switch material {
    case .ed25519:
      return privateKeyFile()
    case .ecdsaP256(let scalar, _):
      guard let key = try? P256.Signing.PrivateKey(rawRepresentation: scalar) else {
        throw KeyError.generation("the P-256 private key could not be encoded as PEM")
      }
      let pem = key.pemRepresentation
      return Array((pem.hasSuffix("\n") ? pem : pem + "\n").utf8)
    case .rsa(let n, let e, let d, _, let p, let q):
      do {
        let key = try _RSA.Signing.PrivateKey(n: n, e: e, d: d, p: p, q: q)
        let pem = key.pemRepresentation
        return Array((pem.hasSuffix("\n") ? pem : pem + "\n").utf8)
      } catch {
        throw KeyError.generation("the RSA private key could not be encoded as PEM")
      }
    }
  }

  /// Reads an unencrypted OpenSSH private key file.
  /// - Returns: the key pair and the file's check-int.
  public static func parsePrivateKeyFile(_ bytes: [UInt8]) throws(KeyError) -> (SSHKeyPair, UInt32) {
    let text = String(decoding: bytes, as: UTF8.self)
    let lines = text.split(whereSeparator: \.isNewline).map(String.init)
    guard lines.first == "-----BEGIN OPENSSH PRIVATE KEY-----",
      lines.last == "-----END OPENSSH PRIVATE KEY-----",
      let data = Data(base64Encoded: lines.dropFirst().dropLast().joined())
    else {
      throw .malformed("not an OpenSSH private key file")
    }
    let magic = Array("openssh-key-v1".utf8) + [0]
    guard Array(data.prefix(magic.count)) == magic else {
      throw .malformed("missing the openssh-key-v1 header")
    }
    var reader = SSHReader(Array(data.dropFirst(magic.count)))
    guard reader.string() == Array("none".utf8), reader.string() == Array("none".utf8) else {
      throw .malformed("encrypted keys are not supported")
    }
    guard reader.string() != nil, reader.uint32() == 1, reader.string() != nil, let section = reader.string()
    else {
      throw .malformed("expected exactly one key")
    }
    var s = SSHReader(section)
    guard let check1 = s.uint32(), let check2 = s.uint32(), check1 == check2 else {
      throw .malformed("the check values differ (wrong passphrase or damaged file)")
    }
    guard let typeName = s.string() else { throw .malformed("no key type") }
    switch String(decoding: typeName, as: UTF8.self) {
    case "ssh-ed25519":
      guard let pub = s.string(), pub.count == 32, let both = s.string(), both.count == 64,
        let comment = s.string()
      else {
        throw .malformed("bad Ed25519 key fields")
      }
      let pair = try? SSHKeyPair(
        ed25519Seed: Array(both.prefix(32)), comment: String(decoding: comment, as: UTF8.self))
      guard let pair, Array(both.suffix(32)) == pub else {
        throw .malformed("the Ed25519 public half does not match the seed")
      }
      return (pair, check1)
    case "ssh-rsa":
      guard let n = s.string(), let e = s.string(), let d = s.string(), let iqmp = s.string(),
        let p = s.string(),
        let q = s.string(), let comment = s.string()
      else { throw .malformed("bad RSA key fields") }
      func strip(_ v: [UInt8]) -> [UInt8] { Array(v.drop { $0 == 0 }) }
      let bits = strip(n).count * 8
      let type: KeyType = bits > 3072 ? .rsa4096 : .rsa2048
      return (
        SSHKeyPair(
          material: .rsa(n: strip(n), e: strip(e), d: strip(d), iqmp: strip(iqmp), p: strip(p), q: strip(q)),
          type: type,
          comment: String(decoding: comment, as: UTF8.self)), check1
      )
    case "ecdsa-sha2-nistp256":
      guard s.string() == Array("nistp256".utf8), let point = s.string(), let scalar = s.positiveMPInt(),
        scalar.count <= 32, let comment = s.string()
      else { throw .malformed("bad ECDSA P-256 key fields") }
      let pair = try? SSHKeyPair(
        ecdsaP256Scalar: [UInt8](repeating: 0, count: 32 - scalar.count) + scalar,
        comment: String(decoding: comment, as: UTF8.self))
      guard let pair, case .ecdsaP256(_, let derived) = pair.material, derived == point else {
        throw .malformed("the ECDSA public point does not match the private scalar")
      }
      return (pair, check1)
    default:
      throw .malformed("unsupported key type")
    }
  }
}

/// SSH key fingerprints.
public enum Fingerprint {
  /// `SHA256:` and the unpadded base64 of the blob's SHA-256, like `ssh-keygen -l`.
  public static func sha256(_ blob: [UInt8]) -> String {
    var text = Data(SHA256.hash(data: blob)).base64EncodedString()
    while text.hasSuffix("=") { text.removeLast() }
    return "SHA256:" + text
  }
}

/// Problems with key material; messages never include private bytes.
public enum KeyError: Error, Sendable, Equatable, CustomStringConvertible {
  case generation(String)
  case malformed(String)
  case io(String)

  public var description: String {
    switch self {
    case .generation(let why): "cannot generate a key: \(why)."
    case .malformed(let why): "the key file is not usable: \(why)."
    case .io(let why): why
    }
  }
}
