import Crypto
import Foundation

/// Why a revocation could not be recorded.
public enum KRLError: Error, Sendable, Equatable, CustomStringConvertible {
  /// OpenSSH reads serial 0 as "no serial" and refuses a KRL that revokes it.
  case serialZero
  /// The comment (excerpt) and what is wrong with it.
  case invalidComment(String, CertificateTextProblem)

  public var description: String {
    switch self {
    case .serialZero:
      "The serial 0 cannot be revoked: OpenSSH treats 0 as 'no serial' and rejects a KRL that lists it; expected serials from 1 to \(UInt64.max) (revoke such certificates by their CA or key instead)."
    case .invalidComment(let value, let problem):
      "The KRL comment '\(value)' is not allowed: \(problem); expected printable ASCII characters or spaces."
    }
  }
}

/// An OpenSSH key revocation list (PROTOCOL.krl), for sshd's `RevokedKeys` and `ssh-keygen -Q`.
///
/// Certificates are revoked by serial under the CA key that signed them; plain keys by the
/// SHA-256 of their blob (`KRL_SECTION_FINGERPRINT_SHA256`, read by OpenSSH 7.9 and later).
/// The encoding is deterministic: CA sections sorted by CA key blob, serials sorted and merged,
/// hashes sorted. Runs of three or more serials are written as ranges, the others as lists. No
/// signature section is written: distribute the file by trusted means.
public struct KeyRevocationList: Sendable {
  /// Increases each time the list changes.
  public let version: UInt64
  /// Seconds since 1970.
  public let generatedDate: UInt64
  public let comment: String
  /// Revoked serial ranges by CA public key blob, as added.
  private var serials: [[UInt8]: [ClosedRange<UInt64>]] = [:]
  private var sha256Hashes: Set<[UInt8]> = []

  static let magic: [UInt8] = Array("SSHKRL\n".utf8) + [0]
  static let sectionCertificates: UInt8 = 1
  static let sectionFingerprintSHA256: UInt8 = 5
  static let certSectionSerialList: UInt8 = 0x20
  static let certSectionSerialRange: UInt8 = 0x21

  /// An empty list.
  /// - Throws: `KRLError.invalidComment` unless `comment` is printable ASCII and spaces.
  public init(version: UInt64, generatedDate: UInt64, comment: String = "") throws(KRLError) {
    if let problem = OpenSSHCertificateRequest.commentProblem(comment) {
      throw .invalidComment(CertificateError.excerpt(comment), problem)
    }
    self.version = version
    self.generatedDate = generatedDate
    self.comment = comment
  }

  /// Revokes the certificates with these serials signed by `ca`.
  /// - Throws: `KRLError.serialZero` when 0 is among them (nothing is recorded then).
  public mutating func revokeCertificates(serials: some Sequence<UInt64>, issuedBy ca: SSHKeyPair)
    throws(KRLError)
  {
    try revoke(serials.map { $0...$0 }, caBlob: ca.publicBlob)
  }

  /// Revokes the certificates with these serials signed by the CA key `ca`.
  /// - Throws: `KRLError.serialZero` when 0 is among them (nothing is recorded then).
  public mutating func revokeCertificates(serials: some Sequence<UInt64>, issuedBy ca: OpenSSHPublicKey)
    throws(KRLError)
  {
    try revoke(serials.map { $0...$0 }, caBlob: ca.blob)
  }

  /// Revokes the certificates with serials in `range` signed by `ca`.
  /// - Throws: `KRLError.serialZero` when the range starts at 0.
  public mutating func revokeCertificates(serialsIn range: ClosedRange<UInt64>, issuedBy ca: SSHKeyPair)
    throws(KRLError)
  {
    try revoke([range], caBlob: ca.publicBlob)
  }

  /// Revokes the certificates with serials in `range` signed by the CA key `ca`.
  /// - Throws: `KRLError.serialZero` when the range starts at 0.
  public mutating func revokeCertificates(serialsIn range: ClosedRange<UInt64>, issuedBy ca: OpenSSHPublicKey)
    throws(KRLError)
  {
    try revoke([range], caBlob: ca.blob)
  }

  /// Revokes a plain key by the SHA-256 of its blob. A revoked CA key also revokes every
  /// certificate it signed; a revoked subject key, every certificate of that key.
  public mutating func revokeKey(_ key: OpenSSHPublicKey) {
    sha256Hashes.insert(Array(SHA256.hash(data: key.blob)))
  }

  /// Revokes a plain key by the SHA-256 of its public blob.
  public mutating func revokeKey(_ key: SSHKeyPair) {
    sha256Hashes.insert(Array(SHA256.hash(data: key.publicBlob)))
  }

  private mutating func revoke(_ ranges: [ClosedRange<UInt64>], caBlob: [UInt8]) throws(KRLError) {
    if ranges.contains(where: { $0.lowerBound == 0 }) { throw .serialZero }
    serials[caBlob, default: []].append(contentsOf: ranges)
  }

  /// The serials revoked under the CA key with this public blob: sorted, disjoint ranges, with
  /// adjacent and overlapping ones merged.
  public func revokedSerialRanges(caPublicKeyBlob: [UInt8]) -> [ClosedRange<UInt64>] {
    Self.merged(serials[caPublicKeyBlob] ?? [])
  }

  /// The SHA-256 hashes of the revoked plain keys, sorted.
  public var revokedKeyHashes: [[UInt8]] {
    sha256Hashes.sorted { $0.lexicographicallyPrecedes($1) }
  }

  static func merged(_ ranges: [ClosedRange<UInt64>]) -> [ClosedRange<UInt64>] {
    var out: [ClosedRange<UInt64>] = []
    for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
      if let last = out.last, last.upperBound == .max || range.lowerBound <= last.upperBound + 1 {
        out[out.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
      } else {
        out.append(range)
      }
    }
    return out
  }

  /// The binary KRL file.
  public func encoded() -> [UInt8] {
    var w = SSHWriter()
    w.bytes.append(contentsOf: Self.magic)
    w.uint32(1)  // KRL_FORMAT_VERSION
    w.uint64(version)
    w.uint64(generatedDate)
    w.uint64(0)  // flags
    w.string([UInt8]())  // reserved
    w.string(comment)
    for ca in serials.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
      let ranges = Self.merged(serials[ca] ?? [])
      if ranges.isEmpty { continue }
      var section = SSHWriter()
      section.string(ca)
      section.string([UInt8]())  // reserved
      var list = SSHWriter()
      func flushList() {
        guard !list.bytes.isEmpty else { return }
        section.bytes.append(Self.certSectionSerialList)
        section.string(list.bytes)
        list.bytes.removeAll()
      }
      for range in ranges {
        if range.upperBound - range.lowerBound >= 2 {
          flushList()
          var bounds = SSHWriter()
          bounds.uint64(range.lowerBound)
          bounds.uint64(range.upperBound)
          section.bytes.append(Self.certSectionSerialRange)
          section.string(bounds.bytes)
        } else {
          for serial in range { list.uint64(serial) }
        }
      }
      flushList()
      w.bytes.append(Self.sectionCertificates)
      w.string(section.bytes)
    }
    if !sha256Hashes.isEmpty {
      var section = SSHWriter()
      for hash in revokedKeyHashes { section.string(hash) }
      w.bytes.append(Self.sectionFingerprintSHA256)
      w.string(section.bytes)
    }
    return w.bytes
  }
}
