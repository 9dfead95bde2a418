import Crypto
import Foundation
import SixtyCore

/// An append-only, hash-chained JSON-lines audit log.
///
/// Each line is a JSON object whose `prev` is the previous line's `hash` (64 zeros for the
/// first) and whose `hash` is the SHA-256, in hex, of the line's text up to (not including)
/// `,"hash":` followed by `}`. Editing, reordering or deleting a record breaks the chain at
/// that line; `AuditVerifier` names it.
public final class AuditLog: @unchecked Sendable {
  public static let genesis = String(repeating: "0", count: 64)

  // `lock` protects `fd`, `head` and `sequence`: appends from concurrent requests are serialised
  // so the chain stays linear.
  private let lock = NSLock()
  private let fd: Int32
  private var head: String
  private var sequence: Int
  public let path: String
  // `syncLock` protects `synced`, the newest sequence number known to be on disk. Records are
  // written under `lock` and flushed under `syncLock`, so one fsync covers every record written
  // while the previous one ran (group commit), and writers never wait for a disk flush in `lock`.
  private let syncLock = NSLock()
  private var synced = 0
  private var flushes = 0

  /// The newest record known to be on disk, and how many fsyncs it took so far.
  var durability: (through: Int, flushes: Int) { syncLock.withLock { (synced, flushes) } }

  /// Opens (or creates, mode 0600) the log at `path` and continues its chain.
  /// - Throws: `AuditError` when the file cannot be opened or its last record is damaged.
  public init(path: String) throws {
    self.path = path
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw AuditError(
        message: "cannot open the audit log '\(path)': \(String(cString: strerror(errno))).", line: nil)
    }
    self.fd = fd
    let tail = try AuditLog.lastRecord(path: path)
    head = tail?.hash ?? AuditLog.genesis
    sequence = tail?.sequence ?? 0
  }

  deinit { close(fd) }

  /// The hash of the newest record: keep it elsewhere to detect truncation of the log's end.
  public var headHash: String { lock.withLock { head } }

  /// Appends `record` and flushes it to disk before returning.
  @discardableResult
  public func append(_ record: AuditRecord) throws -> String {
    let (hash, number) = try lock.withLock {
      let next = sequence + 1
      var line = record.body(sequence: next, previous: head)
      let hash = AuditLog.hash(line)
      line.removeLast()  // "}"
      line.append(contentsOf: Array(",\"hash\":\"\(hash)\"}\n".utf8))
      let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      guard written == line.count else {
        throw AuditError(
          message: "cannot write to the audit log '\(path)': \(String(cString: strerror(errno))).", line: nil)
      }
      head = hash
      sequence = next
      return (hash, next)
    }
    syncLock.withLock {
      guard synced < number else { return }  // flushed by another append's fsync
      let upTo = lock.withLock { sequence }
      fsync(fd)
      synced = upTo
      flushes += 1
    }
    return hash
  }

  static func hash(_ body: [UInt8]) -> String {
    Hex.lowercase(SHA256.hash(data: body))
  }

  static func lastRecord(path: String) throws -> (hash: String, sequence: Int)? {
    guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return nil }
    let lines = data.split(separator: UInt8(ascii: "\n"))
    guard let last = lines.last else { return nil }
    switch AuditVerifier.check(line: Array(last), number: lines.count, previous: nil, sequence: nil) {
    case .success(let parsed): return (parsed.hash, parsed.sequence)
    case .failure(let error):
      throw AuditError(
        message:
          "the last record of the audit log '\(path)' is damaged (\(error.message)); refusing to extend a broken chain.",
        line: lines.count)
    }
  }
}

/// A problem with an audit log.
public struct AuditError: Error, Sendable, CustomStringConvertible {
  public var message: String
  /// The 1-based line at fault, when there is one.
  public var line: Int?
  public var description: String { message }
}
