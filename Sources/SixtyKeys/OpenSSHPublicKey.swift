import Crypto
import Foundation

/// A public key line from an untrusted source (a `SendSSHPublicKey` request), checked strictly.
///
/// Exactly one `ssh-ed25519`, `ecdsa-sha2-nistp256` (a point on the curve) or `ssh-rsa` (2048
/// bits or more) key is accepted, written as
/// `TYPE BASE64 [COMMENT]` with canonical base64 whose inner type matches `TYPE`. Anything
/// that could smuggle options or a second line into `authorized_keys` is refused.
public struct OpenSSHPublicKey: Sendable, Equatable {
  public let type: String
  public let blob: [UInt8]
  public let comment: String?
  /// The RSA modulus size, or 256 for Ed25519 and ECDSA P-256.
  public let bits: Int

  public var fingerprint: String { Fingerprint.sha256(blob) }

  /// `TYPE BASE64`, without the comment: the only part that reaches `authorized_keys`.
  public var authorizedKeysLine: String { "\(type) \(Data(blob).base64EncodedString())" }

  public static let maxLength = 8192

  /// The key types accepted, as their OpenSSH names: those of the keys Sixty makes.
  public static let supportedTypes = Set(KeyType.allCases.map(\.sshName))

  /// Why a key was refused. Messages quote at most a short, sanitised excerpt of the input.
  public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case tooLong(Int)
    case controlCharacter
    case optionsPrefix(String)
    case unsupportedType(String)
    case missingKeyData
    case badBase64
    case typeMismatch(outer: String, inner: String)
    case malformedBlob(String)
    case rsaTooSmall(Int)
    /// An RSA public exponent below 65537 or even (its decimal digits).
    case rsaWeakExponent(String)
    case badComment

    public var description: String {
      switch self {
      case .empty:
        "The public key is empty; expected 'ssh-ed25519 AAAA…', 'ecdsa-sha2-nistp256 AAAA…' or 'ssh-rsa AAAA…'."
      case .tooLong(let n):
        "The public key is \(n) bytes long; expected at most \(OpenSSHPublicKey.maxLength)."
      case .controlCharacter:
        "The public key contains a newline, NUL or other control character; expected exactly one key on one line."
      case .optionsPrefix(let excerpt):
        "The public key has an options prefix ('\(excerpt)'); expected a bare 'ssh-ed25519', 'ecdsa-sha2-nistp256' or 'ssh-rsa' key."
      case .unsupportedType(let excerpt):
        "The key type '\(excerpt)' is not supported; expected 'ssh-ed25519', 'ecdsa-sha2-nistp256' or 'ssh-rsa'."
      case .missingKeyData: "The public key has no key data after its type; expected 'TYPE BASE64'."
      case .badBase64: "The public key's data is not valid base64."
      case .typeMismatch(let outer, let inner):
        "The public key says '\(outer)' but its data holds a '\(inner)' key; expected them to match."
      case .malformedBlob(let why): "The public key's data is malformed: \(why)."
      case .rsaTooSmall(let bits): "The RSA key has \(bits) bits; expected at least 2048."
      case .rsaWeakExponent(let exponent):
        "The RSA key's public exponent is \(exponent); expected an odd number of at least 65537 (ssh-keygen uses 65537)."
      case .badComment: "The public key's comment holds characters other than printable ASCII or spaces."
      }
    }
  }

  static func excerpt(_ text: Substring) -> String {
    let cleaned = text.prefix(24).map {
      $0.isASCII && !$0.isNewline && ($0.asciiValue ?? 0) >= 0x20 ? $0 : "?"
    }
    return String(cleaned) + (text.count > 24 ? "…" : "")
  }

  /// Parses and validates `text`.
  /// - Throws: `ParseError` saying what is wrong.
  public static func parseStrict(_ text: String) throws(ParseError) -> OpenSSHPublicKey {
    let bytes = Array(text.utf8)
    if bytes.isEmpty { throw .empty }
    if bytes.count > maxLength { throw .tooLong(bytes.count) }
    if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) { throw .controlCharacter }
    let fields = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
    let typeField = fields[0]
    guard supportedTypes.contains(String(typeField)) else {
      if typeField.contains("=") || typeField.contains("\"") || typeField.contains(",")
        || [
          "cert-authority", "restrict", "no-pty", "no-port-forwarding", "no-agent-forwarding",
          "no-x11-forwarding",
        ]
        .contains(typeField)
      {
        throw .optionsPrefix(excerpt(typeField))
      }
      throw .unsupportedType(excerpt(typeField))
    }
    guard fields.count >= 2, !fields[1].isEmpty else { throw .missingKeyData }
    let encoded = fields[1]
    guard encoded.utf8.count % 4 == 0,
      encoded.utf8.allSatisfy({ b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2B
          || b == 0x2F
          || b == 0x3D
      }),
      let data = Data(base64Encoded: String(encoded)), Data(data).base64EncodedString() == encoded
    else {
      throw .badBase64
    }
    var comment: String?
    if fields.count == 3 {
      let text = fields[2]
      // The comment is dropped before the key reaches authorized_keys, but it must still be tame.
      guard text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { throw .badComment }
      if supportedTypes.contains(where: { text.contains($0 + " ") }) {
        throw .malformedBlob("a second key follows the first")
      }
      comment = String(text)
    }
    var reader = SSHReader(Array(data))
    guard let inner = reader.string() else { throw .malformedBlob("no key type inside") }
    let innerType = String(decoding: inner, as: UTF8.self)
    guard innerType == typeField else {
      throw .typeMismatch(outer: String(typeField), inner: excerpt(Substring(innerType)))
    }
    let bits: Int
    if typeField == "ssh-ed25519" {
      guard let key = reader.string(), key.count == 32 else {
        throw .malformedBlob("an Ed25519 key must be 32 bytes")
      }
      bits = 256
    } else if typeField == "ecdsa-sha2-nistp256" {
      guard reader.string() == Array("nistp256".utf8) else {
        throw .malformedBlob("an ecdsa-sha2-nistp256 key must name the curve nistp256")
      }
      guard let point = reader.string(), point.count == 65, point.first == 4,
        (try? P256.Signing.PublicKey(x963Representation: point)) != nil
      else {
        throw .malformedBlob("the ECDSA key is not an uncompressed point on P-256")
      }
      bits = 256
    } else {
      guard let e = reader.positiveMPInt(), !e.isEmpty else {
        throw .malformedBlob("the RSA exponent is missing or invalid")
      }
      guard let n = reader.positiveMPInt(), let first = n.first else {
        throw .malformedBlob("the RSA modulus is missing or invalid")
      }
      // A small exponent (3 above all) invites the low-exponent attacks on RSA; OpenSSL and
      // ssh-keygen use 65537. The exponent is at most 8 bytes: a UInt64.
      guard e.count <= 8 else { throw .malformedBlob("the RSA exponent is larger than 64 bits") }
      let exponent = e.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
      guard exponent >= 65537, exponent & 1 == 1 else { throw .rsaWeakExponent(String(exponent)) }
      bits = (n.count - 1) * 8 + (8 - first.leadingZeroBitCount)
      guard bits >= 2048 else { throw .rsaTooSmall(bits) }
      guard bits <= 16384 else { throw .malformedBlob("the RSA modulus is larger than 16384 bits") }
    }
    guard reader.isAtEnd else { throw .malformedBlob("unexpected bytes after the key") }
    return OpenSSHPublicKey(type: String(typeField), blob: Array(data), comment: comment, bits: bits)
  }
}
