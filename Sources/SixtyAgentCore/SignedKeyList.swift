import Crypto

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#endif

/// The list of currently valid keys for one host and OS user, as the broker serves it to
/// `sixty-agent`, signed with the broker's Ed25519 key.
///
/// On the wire: `{"payload": BASE64(JSON), "signature": BASE64(Ed25519(payload bytes))}`. The
/// signature covers the exact payload bytes, so nothing is re-serialised before checking.
public struct SignedKeyList: Codable, Sendable, Equatable {
  public struct Entry: Codable, Sendable, Equatable {
    /// `ssh-ed25519 AAAA…`, `ecdsa-sha2-nistp256 AAAA…` or `ssh-rsa AAAA…`, without a comment.
    public var key: String
    public var fingerprint: String
    /// Seconds since 1970 after which sshd must refuse the key.
    public var expiresAt: Int64
    public var requestID: String
    public var principal: String
    /// CIDRs the key may be used from (empty: anywhere).
    public var from: [String]

    public init(
      key: String, fingerprint: String, expiresAt: Int64, requestID: String, principal: String, from: [String]
    ) {
      self.key = key
      self.fingerprint = fingerprint
      self.expiresAt = expiresAt
      self.requestID = requestID
      self.principal = principal
      self.from = from
    }

    enum CodingKeys: String, CodingKey {
      case key, fingerprint, from, principal
      case expiresAt = "expires_at"
      case requestID = "request_id"
    }
  }

  public var instanceID: String
  public var osUser: String
  /// When the broker produced the list (seconds since 1970); agents reject stale lists.
  public var issuedAt: Int64
  public var keys: [Entry]

  public init(instanceID: String, osUser: String, issuedAt: Int64, keys: [Entry]) {
    self.instanceID = instanceID
    self.osUser = osUser
    self.issuedAt = issuedAt
    self.keys = keys
  }

  enum CodingKeys: String, CodingKey {
    case keys
    case instanceID = "instance_id"
    case osUser = "os_user"
    case issuedAt = "issued_at"
  }

  /// The signed envelope.
  public struct Envelope: Codable, Sendable {
    public var payload: String
    public var signature: String
  }

  /// Serialises and signs the list.
  public func signed(with key: Curve25519.Signing.PrivateKey) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let payload = try encoder.encode(self)
    let signature = try key.signature(for: payload)
    return try encoder.encode(
      Envelope(payload: payload.base64EncodedString(), signature: signature.base64EncodedString()))
  }

  /// Why a signed list was not accepted.
  public enum VerificationError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case badSignature
    case wrongHost(expected: String, found: String)
    case wrongUser(expected: String, found: String)
    case stale(ageSeconds: Int64)

    public var description: String {
      switch self {
      case .malformed(let what): "the broker's answer is malformed (\(what))"
      case .badSignature: "the key list's signature does not verify with the pinned broker public key"
      case .wrongHost(let expected, let found): "the key list is for instance \(found), not \(expected)"
      case .wrongUser(let expected, let found): "the key list is for user \(found), not \(expected)"
      case .stale(let age): "the key list was issued \(age) s ago (or in the future); expected a fresh list"
      }
    }
  }

  /// Checks the envelope's signature, host, user and freshness.
  /// - Parameters:
  ///   - maxAge: how old (or how far in the future) `issued_at` may be, in seconds.
  public static func verify(
    _ data: Data, publicKey: Curve25519.Signing.PublicKey, instanceID: String, osUser: String, now: Date,
    maxAge: Int64 = 60
  ) throws(VerificationError) -> SignedKeyList {
    guard let envelope = try? JSONDecoder().decode(Envelope.self, from: data) else {
      throw .malformed("expected a JSON object with 'payload' and 'signature'")
    }
    guard let payload = Data(base64Encoded: envelope.payload),
      let signature = Data(base64Encoded: envelope.signature)
    else {
      throw .malformed("payload or signature is not base64")
    }
    guard publicKey.isValidSignature(signature, for: payload) else { throw .badSignature }
    guard let list = try? JSONDecoder().decode(SignedKeyList.self, from: payload) else {
      throw .malformed("the signed payload is not a key list")
    }
    guard list.instanceID == instanceID else {
      throw .wrongHost(expected: instanceID, found: list.instanceID)
    }
    guard list.osUser == osUser else { throw .wrongUser(expected: osUser, found: list.osUser) }
    let age = Int64(now.timeIntervalSince1970) - list.issuedAt
    guard abs(age) <= maxAge else { throw .stale(ageSeconds: age) }
    return list
  }

  /// `authorized_keys` lines for the entries still valid at `now`, filtered by fingerprint when given.
  ///
  /// Each line is `expiry-time="YYYYMMDDHHMMZ"[,from="…"] KEY`. Keys are re-checked here so a
  /// broker bug can never smuggle options or a second line into sshd.
  public func authorizedKeysLines(now: Date, fingerprint: String? = nil) -> [String] {
    offeredKeys(now: now, fingerprint: fingerprint).map(\.line)
  }

  /// The entries `authorizedKeysLines` prints, each with its line: what the agent may log as
  /// offered (an entry dropped here was never offered to sshd).
  public func offeredKeys(now: Date, fingerprint: String? = nil) -> [(entry: Entry, line: String)] {
    let nowSeconds = Int64(now.timeIntervalSince1970)
    var lines: [(entry: Entry, line: String)] = []
    for entry in keys where entry.expiresAt > nowSeconds {
      if let fingerprint, entry.fingerprint != fingerprint { continue }
      guard SignedKeyList.isSafeKeyLine(entry.key), entry.from.allSatisfy(SignedKeyList.isSafeCIDR) else {
        continue
      }
      var options = "expiry-time=\"\(SignedKeyList.expiryTime(entry.expiresAt))\""
      if !entry.from.isEmpty { options += ",from=\"\(entry.from.concatenated(separator: ","))\"" }
      lines.append((entry, "\(options) \(entry.key)"))
    }
    return lines
  }

  /// sshd's `expiry-time` format, in UTC with the `Z` suffix. sshd compares at minute
  /// resolution, so the time is rounded up to the next minute boundary; the broker's own TTL
  /// (checked when it builds the list) is the precise limit.
  public static func expiryTime(_ epoch: Int64) -> String {
    let rounded = (epoch + 59) / 60 * 60
    var time = time_t(rounded)
    var parts = tm()
    gmtime_r(&time, &parts)
    func padded(_ value: Int32, _ width: Int) -> String {
      let digits = String(value)
      return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    let date = padded(parts.tm_year + 1900, 4) + padded(parts.tm_mon + 1, 2) + padded(parts.tm_mday, 2)
    return date + padded(parts.tm_hour, 2) + padded(parts.tm_min, 2) + "Z"
  }

  /// `TYPE BASE64` with nothing else: no options, spaces, quotes or control characters.
  public static func isSafeKeyLine(_ line: String) -> Bool {
    let parts = line.split(separator: " ", omittingEmptySubsequences: false)
    guard parts.count == 2,
      parts[0] == "ssh-ed25519" || parts[0] == "ssh-rsa" || parts[0] == "ecdsa-sha2-nistp256"
    else { return false }
    return parts[1].utf8.allSatisfy { b in
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2B
        || b == 0x2F || b == 0x3D
    }
  }

  static func isSafeCIDR(_ text: String) -> Bool {
    !text.isEmpty
      && text.utf8.allSatisfy { b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46) || b == 0x2E
          || b == 0x3A || b == 0x2F
      }
  }
}
