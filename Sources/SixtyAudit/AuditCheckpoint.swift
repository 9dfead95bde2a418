import Crypto
import Foundation
import SixtyCore

#if canImport(Glibc)
  import Glibc
#endif

/// The broker's signature over the head of its audit log: "record `sequence` has hash `head`, at
/// `time`". Kept beside the log (`audit.jsonl.checkpoint`, one JSON line, replaced atomically),
/// it lets `AuditVerifier` detect records removed from the end of the log and a rewrite of the
/// log with recomputed hashes, up to the checkpointed record.
///
/// The signature is Ed25519 by the broker's signing key (the one agents pin) over the UTF-8
/// bytes of `sixty-audit-checkpoint-v1\nseq=SEQUENCE\nhead=HEAD\ntime=TIME\n`, a text no other
/// signed message of the broker (JSON key lists) can be mistaken for.
public struct AuditCheckpoint: Sendable, Equatable {
  public static let format = "sixty-audit-checkpoint-v1"
  /// The newest record covered (0: the empty log, whose head is `AuditLog.genesis`).
  public var sequence: Int
  /// That record's hash.
  public var head: String
  /// When it was signed, as written (ISO 8601, UTC, milliseconds).
  public var time: String
  /// The signing key's public half, base64 of its 32 raw bytes (informative: verification
  /// uses the key the operator pins).
  public var publicKey: String
  /// The Ed25519 signature, base64.
  public var signature: String

  static func message(sequence: Int, head: String, time: String) -> Data {
    Data("\(format)\nseq=\(sequence)\nhead=\(head)\ntime=\(time)\n".utf8)
  }

  public static func signed(sequence: Int, head: String, time: Date, key: Curve25519.Signing.PrivateKey)
    throws -> AuditCheckpoint
  {
    let text = AuditRecord.timeFormat.format(time)
    let signature = try key.signature(for: message(sequence: sequence, head: head, time: text))
    return AuditCheckpoint(
      sequence: sequence, head: head, time: text,
      publicKey: key.publicKey.rawRepresentation.base64EncodedString(),
      signature: signature.base64EncodedString())
  }

  /// Whether `signature` verifies with `key` over this checkpoint's sequence, head and time.
  public func isSigned(by key: Curve25519.Signing.PublicKey) -> Bool {
    guard let raw = Data(base64Encoded: signature) else { return false }
    return key.isValidSignature(raw, for: AuditCheckpoint.message(sequence: sequence, head: head, time: time))
  }

  /// One JSON line, keys in a fixed order.
  public func encoded() -> [UInt8] {
    var w = JSONWriter()
    w.beginObject()
    w.field("format", AuditCheckpoint.format)
    w.field("seq", sequence)
    w.field("head", head)
    w.field("time", time)
    w.field("public_key", publicKey)
    w.field("signature", signature)
    w.endObject()
    return w.bytes + [UInt8(ascii: "\n")]
  }

  /// The checkpoint file at `path`, or nil when there is none.
  /// - Throws: `AuditError` when it cannot be read or is not a checkpoint.
  public static func read(path: String) throws -> AuditCheckpoint? {
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw AuditError(message: "cannot read the audit checkpoint '\(path)'.", line: nil)
    }
    guard data.count <= 4096,
      let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
      object["format"] as? String == format,
      let sequence = object["seq"] as? Int, sequence >= 0,
      let head = object["head"] as? String, head.utf8.count == 64,
      head.utf8.allSatisfy({
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
          || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
      }),
      let time = object["time"] as? String, time.utf8.count <= 64,
      let publicKey = object["public_key"] as? String, publicKey.utf8.count <= 64,
      let signature = object["signature"] as? String, signature.utf8.count <= 128
    else {
      throw AuditError(
        message:
          "the audit checkpoint '\(path)' is not a \(format) JSON object with seq, head (64 hex digits), time, public_key and signature.",
        line: nil, chainBroken: true)
    }
    return AuditCheckpoint(
      sequence: sequence, head: head, time: time, publicKey: publicKey, signature: signature)
  }

  /// Replaces the file at `path` atomically: a temporary file beside it (0600), flushed, renamed
  /// over it, and the directory flushed.
  func write(to path: String) throws {
    let temporary = path + ".tmp"
    func failure(_ what: String) -> AuditError {
      AuditError(
        message: "cannot \(what) the audit checkpoint '\(path)': \(String(cString: strerror(errno))).",
        line: nil)
    }
    // A stale temporary file (a crash mid-write, or a link planted there) is removed, never written through.
    unlink(temporary)
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
    guard fd >= 0 else { throw failure("create") }
    let bytes = encoded()
    let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    guard written == bytes.count, fchmod(fd, 0o600) == 0, fsync(fd) == 0 else {
      let error = failure("write")
      close(fd)
      unlink(temporary)
      throw error
    }
    close(fd)
    guard rename(temporary, path) == 0 else {
      let error = failure("replace")
      unlink(temporary)
      throw error
    }
    let directory = (path as NSString).deletingLastPathComponent
    let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dirfd >= 0 {
      fsync(dirfd)
      close(dirfd)
    }
  }
}
