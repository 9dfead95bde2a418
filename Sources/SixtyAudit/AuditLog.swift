import Crypto
import Foundation
import SixtyCore

/// An append-only, hash-chained JSON-lines audit log.
///
/// Each line is a JSON object whose `prev` is the previous line's `hash` (64 zeros for the
/// first) and whose `hash` is the SHA-256, in hex, of the line's text up to (not including)
/// `,"hash":` followed by `}`. Editing, reordering or deleting a record breaks the chain at
/// that line; `AuditVerifier` names it. Removing records from the end, or rewriting the whole
/// file with recomputed hashes, is detected against the signed checkpoint written beside the log
/// (`checkpoint(signingKey:time:)`, `AuditCheckpoint`).
///
/// One process writes a log at a time: opening takes an exclusive `flock` on the file, held until
/// the log is released.
// Sendable: all mutable state is behind `lock`, `syncLock` or `checkpointLock` (see below).
public final class AuditLog: @unchecked Sendable {
  public static let genesis = String(repeating: "0", count: 64)

  /// Writes bytes to a file descriptor, as `write(2)` does (count written, or -1 and `errno`).
  /// Tests inject failing ones.
  public typealias Writer = @Sendable (Int32, UnsafeRawBufferPointer) -> Int

  public static let systemWriter: Writer = { fd, bytes in write(fd, bytes.baseAddress, bytes.count) }

  // `lock` protects `fd`'s file content, `head`, `sequence`, `end` and `dirty`: appends from
  // concurrent requests are serialised so the chain stays linear.
  private let lock = NSLock()
  private let fd: Int32
  private var head: String
  private var sequence: Int
  /// The offset just past the last complete record: a failed append is cut back to it.
  private var end: off_t
  /// Set when a failed append could not be cut back: the next append retries before writing.
  private var dirty = false
  private let writer: Writer
  public let path: String
  /// What opening the log repaired (an incomplete last line cut off), as a sentence to log.
  public let repair: String?
  // `syncLock` protects `synced`, the newest sequence number known to be on disk. Records are
  // written under `lock` and flushed under `syncLock`, so one fsync covers every record written
  // while the previous one ran (group commit), and writers never wait for a disk flush in `lock`.
  private let syncLock = NSLock()
  private var synced = 0
  private var flushes = 0
  // `checkpointLock` serialises checkpoint writes and protects `checkpointed`.
  private let checkpointLock = NSLock()
  private var checkpointed: AuditCheckpoint?

  /// The newest record known to be on disk, and how many fsyncs it took so far.
  var durability: (through: Int, flushes: Int) { syncLock.withLock { (synced, flushes) } }

  /// Where the signed checkpoint of the log at `path` is kept.
  public static func checkpointPath(for path: String) -> String { path + ".checkpoint" }
  public var checkpointPath: String { AuditLog.checkpointPath(for: path) }

  /// Opens (or creates, mode 0600) the log at `path`, locks it, and continues its chain.
  ///
  /// An incomplete last line (a write cut short by a full disk or a crash; never acknowledged)
  /// is cut off and reported in `repair`; a damaged complete record is refused. A log that
  /// disagrees with its checkpoint (shorter than the checkpointed sequence, or another hash
  /// there) is refused too: extending it would replace the evidence with a new checkpoint.
  /// - Throws: `AuditError` when the file cannot be opened, another process holds it, its last
  ///   record is damaged, or it contradicts its checkpoint.
  public init(path: String, writer: @escaping Writer = AuditLog.systemWriter) throws {
    self.path = path
    self.writer = writer
    let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw AuditError(
        message: "cannot open the audit log '\(path)': \(String(cString: strerror(errno))).", line: nil)
    }
    do {
      try AuditLog.lock(fd: fd, path: path)
      let tail = try AuditLog.openTail(fd: fd, path: path)
      let checkpoint = try AuditCheckpoint.read(path: AuditLog.checkpointPath(for: path))
      if let checkpoint {
        try AuditLog.check(checkpoint, path: path, sequence: tail.sequence, head: tail.hash)
      }
      self.fd = fd
      head = tail.hash
      sequence = tail.sequence
      end = tail.end
      repair = tail.repair
      synced = tail.sequence
      checkpointed = checkpoint
    } catch {
      close(fd)
      throw error
    }
  }

  deinit { close(fd) }

  /// The hash of the newest record: keep it elsewhere to detect truncation of the log's end.
  public var headHash: String { lock.withLock { head } }

  /// The newest record's sequence number and hash.
  public var status: (sequence: Int, head: String) { lock.withLock { (sequence, head) } }

  /// The newest checkpoint written or found at opening.
  public var lastCheckpoint: AuditCheckpoint? { checkpointLock.withLock { checkpointed } }

  /// Appends `record` and flushes it to disk before returning. A write that fails part way is cut
  /// back, so the chain still ends with the last complete record and the next append continues it.
  @discardableResult
  public func append(_ record: AuditRecord) throws -> String {
    try appendNumbered(record).hash
  }

  /// `append(_:)`, answering the record's sequence number too (a certificate's serial).
  public func appendNumbered(_ record: AuditRecord) throws -> (sequence: Int, hash: String) {
    let (hash, number) = try lock.withLock {
      if dirty {
        guard ftruncate(fd, end) == 0 else {
          throw AuditError(
            message:
              "cannot remove the incomplete record a failed write left at the end of the audit log '\(path)' (byte \(end)): \(String(cString: strerror(errno))); refusing to append after it.",
            line: nil)
        }
        dirty = false
      }
      let next = sequence + 1
      var line = record.body(sequence: next, previous: head)
      let hash = AuditLog.hash(line)
      line.removeLast()  // "}"
      line.append(contentsOf: Array(",\"hash\":\"\(hash)\"}\n".utf8))
      var done = 0
      while done < line.count {
        let written = line.withUnsafeBytes { writer(fd, UnsafeRawBufferPointer(rebasing: $0[done...])) }
        if written > 0 {
          done += written
          continue
        }
        let code = written < 0 ? errno : 0
        if code == EINTR { continue }
        let reason = code == 0 ? "nothing was written" : String(cString: strerror(code))
        // Cut the partial record off so the next one does not join it.
        let undone = done == 0 || ftruncate(fd, end) == 0
        if !undone { dirty = true }
        throw AuditError(
          message: undone
            ? "cannot write to the audit log '\(path)': \(reason); the record was not added and the chain still ends at record \(sequence)."
            : "cannot write to the audit log '\(path)': \(reason), and the partial record could not be removed (\(String(cString: strerror(errno)))); the next append removes it first.",
          line: nil)
      }
      end += off_t(line.count)
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
    return (number, hash)
  }

  /// Signs the current head with `signingKey` and replaces the checkpoint file atomically (a
  /// temporary file written 0600, flushed, renamed over the old one). The log is flushed first,
  /// so a checkpoint never names a record that is not on disk.
  @discardableResult
  public func checkpoint(signingKey: Curve25519.Signing.PrivateKey, time: Date) throws -> AuditCheckpoint {
    try checkpointLock.withLock {
      let (number, hash) = status
      guard fsync(fd) == 0 else {
        throw AuditError(
          message:
            "cannot flush the audit log '\(path)' before checkpointing it: \(String(cString: strerror(errno))).",
          line: nil)
      }
      let checkpoint = try AuditCheckpoint.signed(sequence: number, head: hash, time: time, key: signingKey)
      try checkpoint.write(to: checkpointPath)
      checkpointed = checkpoint
      return checkpoint
    }
  }

  static func hash(_ body: [UInt8]) -> String {
    Hex.lowercase(SHA256.hash(data: body))
  }

  // MARK: - Opening

  /// Takes the exclusive lock, or names the process that holds it.
  static func lock(fd: Int32, path: String) throws {
    guard flock(fd, LOCK_EX | LOCK_NB) != 0 else { return }
    let code = errno
    guard code == EWOULDBLOCK else {
      throw AuditError(
        message: "cannot lock the audit log '\(path)': \(String(cString: strerror(code))).", line: nil)
    }
    let holder = lockHolder(fd: fd).map { " (pid \($0))" } ?? ""
    throw AuditError(
      message:
        "the audit log '\(path)' is in use by another broker\(holder); two writers would fork its chain. Stop the other broker, or give this one its own audit_log.",
      line: nil)
  }

  /// The pid holding a `flock` on `fd`'s file, from /proc/locks (Linux), when it can be found.
  static func lockHolder(fd: Int32) -> Int? {
    var info = stat()
    guard fstat(fd, &info) == 0, let text = try? String(contentsOfFile: "/proc/locks", encoding: .utf8)
    else { return nil }
    let device = UInt64(info.st_dev)
    let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~UInt64(0xfff))
    let minor = (device & 0xff) | ((device >> 12) & ~UInt64(0xff))
    for line in text.split(separator: "\n") {
      // "1: FLOCK  ADVISORY  WRITE 12345 08:01:123456 0 EOF"
      let fields = line.split(separator: " ")
      guard fields.count >= 6, fields[1] == "FLOCK", let pid = Int(fields[4]) else { continue }
      let id = fields[5].split(separator: ":")
      guard id.count == 3, UInt64(id[0], radix: 16) == major, UInt64(id[1], radix: 16) == minor,
        UInt64(id[2]) == UInt64(info.st_ino)
      else { continue }
      return pid
    }
    return nil
  }

  struct Tail {
    var hash: String
    var sequence: Int
    var end: off_t
    var repair: String?
  }

  /// Finds the last complete record; cuts off an incomplete line after it.
  static func openTail(fd: Int32, path: String) throws -> Tail {
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw AuditError(
        message: "cannot read the audit log '\(path)': \(String(cString: strerror(errno))).", line: nil)
    }
    let size = info.st_size
    guard size > 0 else { return Tail(hash: genesis, sequence: 0, end: 0, repair: nil) }
    var goodEnd = size
    if try read(fd: fd, path: path, from: size - 1, count: 1) != [UInt8(ascii: "\n")] {
      goodEnd = try lastNewline(fd: fd, path: path, before: size) + 1
    }
    var tail = Tail(hash: genesis, sequence: 0, end: goodEnd, repair: nil)
    if goodEnd > 0 {
      let start = try lastNewline(fd: fd, path: path, before: goodEnd - 1) + 1
      let line = try read(fd: fd, path: path, from: start, count: Int(goodEnd - 1 - start))
      switch AuditVerifier.check(line: line, number: 0, previous: nil, sequence: nil) {
      case .success(let parsed):
        tail.hash = parsed.hash
        tail.sequence = parsed.sequence
      case .failure(let error):
        let number = (FileManager.default.contents(atPath: path) ?? Data())[..<Int(goodEnd)]
          .reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        throw AuditError(
          message:
            "the last complete record of the audit log '\(path)' (line \(number)) is damaged (\(error.message.replacingOccurrences(of: "line 0 ", with: "it "))); refusing to extend a broken chain.",
          line: number)
      }
    }
    if goodEnd < size {
      guard ftruncate(fd, goodEnd) == 0, fsync(fd) == 0 else {
        throw AuditError(
          message:
            "cannot cut the incomplete last line off the audit log '\(path)': \(String(cString: strerror(errno))).",
          line: nil)
      }
      tail.repair =
        "the audit log '\(path)' ended with an incomplete line (\(size - goodEnd) bytes after record \(tail.sequence), left by a failed write or a crash; never acknowledged): cut it off, the chain continues from record \(tail.sequence)."
    }
    return tail
  }

  /// The offset of the last newline before `offset`, or -1 when there is none.
  static func lastNewline(fd: Int32, path: String, before offset: off_t) throws -> off_t {
    var position = offset
    let chunk: off_t = 65536
    while position > 0 {
      let start = max(0, position - chunk)
      let bytes = try read(fd: fd, path: path, from: start, count: Int(position - start))
      if let index = bytes.lastIndex(of: UInt8(ascii: "\n")) { return start + off_t(index) }
      position = start
    }
    return -1
  }

  static func read(fd: Int32, path: String, from offset: off_t, count: Int) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
      let n = bytes.withUnsafeMutableBytes {
        pread(fd, $0.baseAddress! + done, count - done, offset + off_t(done))
      }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else {
        throw AuditError(
          message:
            "cannot read the audit log '\(path)' at byte \(offset + off_t(done)): \(n == 0 ? "it ended early" : String(cString: strerror(errno))).",
          line: nil)
      }
      done += n
    }
    return bytes
  }

  /// Refuses a log that is shorter than its checkpoint or differs from it at the checkpointed record.
  static func check(_ checkpoint: AuditCheckpoint, path: String, sequence: Int, head: String) throws {
    let advice =
      "refusing to extend it (a new checkpoint would hide this). Keep the log and its checkpoint as evidence, move both aside, and start the broker on a new log."
    if checkpoint.sequence > sequence {
      throw AuditError(
        message:
          "the audit log '\(path)' ends at record \(sequence), but its checkpoint was signed at record \(checkpoint.sequence) (\(checkpoint.time)): records were removed from its end; \(advice)",
        line: nil, chainBroken: true)
    }
    let hash: String?
    if checkpoint.sequence == sequence {
      hash = head
    } else if checkpoint.sequence == 0 {
      hash = genesis
    } else {
      hash = try AuditVerifier.hash(path: path, at: checkpoint.sequence)
    }
    guard hash == checkpoint.head else {
      throw AuditError(
        message:
          "record \(checkpoint.sequence) of the audit log '\(path)' does not have the hash its checkpoint signed at \(checkpoint.time) (\(checkpoint.head.prefix(12))…): the log was rewritten; \(advice)",
        line: nil, chainBroken: true)
    }
  }
}

/// A problem with an audit log.
public struct AuditError: Error, Sendable, CustomStringConvertible {
  public var message: String
  /// The 1-based line at fault, when there is one.
  public var line: Int?
  /// The log was read but is not what was written (damaged, truncated, rewritten or its checkpoint
  /// forged), as opposed to a file that could not be read at all. Always true when `line` is set.
  public var chainBroken: Bool
  public var description: String { message }

  public init(message: String, line: Int?, chainBroken: Bool = false) {
    self.message = message
    self.line = line
    self.chainBroken = chainBroken || line != nil
  }
}
