import Foundation
import SixtyCore

/// What a replay cache says about a verified request signature.
public enum ReplayVerdict: Sendable, Equatable {
  /// Not seen before (and, from `claim`, now recorded).
  case fresh
  /// Already accepted once: the request is a replay.
  case replayed
  /// Signed before `floor`, a time before which the cache cannot vouch for what it accepted (it
  /// started then without a persistent record, or forgot older entries to stay bounded).
  case signedBeforeFloor(Date)
}

/// Remembers the signatures of accepted pushes while their signing time could still pass the
/// clock-skew check, so a captured request cannot push its key again.
///
/// Keys are canonical: the verified signature (64 lowercase hex digits) with the access key id,
/// never the `Authorization` header's spelling, which a replayer can reformat freely.
/// Implementations: `MemoryReplayCache` (one process, forgets at exit, so it refuses anything
/// signed before it started) and `FileReplayCache` (survives restarts). A shared store (PostgreSQL)
/// for broker replicas implements the same two calls.
public protocol ReplayCache: Sendable {
  /// What `claim` would answer, without recording anything: a cheap early refusal.
  func check(_ key: String, signedAt: Date, now: Date) throws -> ReplayVerdict
  /// Records `key` as accepted, durably, unless it already was; the one atomic step that decides
  /// between two copies of a request. `.fresh` means the caller may accept the request.
  func claim(_ key: String, signedAt: Date, now: Date) throws -> ReplayVerdict
  /// Where the cache keeps its entries, for the broker's start-up log.
  var location: String { get }
  /// Whether a restarted broker still knows what this one accepted.
  var isPersistent: Bool { get }
}

public enum ReplayKey {
  /// The canonical replay key of a verified request: the configured access key id and the
  /// verified signature.
  public static func of(accessKeyID: String, signature: String) -> String { "\(accessKeyID):\(signature)" }
}

/// The entries and the floor, shared by the implementations; not thread-safe (callers lock).
struct ReplayTable {
  struct Entry {
    var signedAt: Date
    var until: Date
  }

  var entries: [String: Entry] = [:]
  /// Requests signed before it are refused.
  var floor: Date?
  let retention: TimeInterval
  let capacity: Int
  private var insertions = 0

  init(retention: TimeInterval, capacity: Int, floor: Date?) {
    self.retention = retention
    self.capacity = max(2, capacity)
    self.floor = floor
  }

  func verdict(_ key: String, signedAt: Date, now: Date) -> ReplayVerdict {
    if let floor, signedAt < floor { return .signedBeforeFloor(floor) }
    if let entry = entries[key], entry.until > now { return .replayed }
    return .fresh
  }

  /// Inserts a fresh key. Returns the new floor when the table had to forget live entries to stay
  /// within `capacity` (the requests they covered are then refused by the floor instead).
  mutating func insert(_ key: String, signedAt: Date, now: Date) -> Date? {
    insertions += 1
    var raised: Date?
    if entries.count >= capacity || insertions % 4096 == 0 { expire(now: now) }
    if entries.count >= capacity {
      // Full of live entries: forget the older half, and refuse everything signed up to the
      // newest forgotten one. (X-Amz-Date has whole seconds: the floor is the next second.)
      let sorted = entries.sorted { $0.value.signedAt < $1.value.signedAt }
      let forget = sorted.prefix(entries.count / 2)
      if let newest = forget.last?.value.signedAt {
        let candidate = newest.addingTimeInterval(1)
        if floor.map({ candidate > $0 }) ?? true {
          floor = candidate
          raised = candidate
        }
      }
      for (key, _) in forget { entries[key] = nil }
    }
    entries[key] = Entry(signedAt: signedAt, until: now.addingTimeInterval(retention))
    return raised
  }

  mutating func expire(now: Date) {
    entries = entries.filter { $0.value.until > now }
  }
}

/// A replay cache in this process's memory only.
///
/// A restarted broker cannot know what its predecessor accepted, so by default it refuses every
/// request signed before it started (`refusingSignedBefore`): a request captured earlier can
/// then never be replayed, at the price of refusing honest requests signed in the seconds before
/// a restart (their clients sign a new one).
// Sendable: `table`, the only mutable state, is read and written only under `lock`.
public final class MemoryReplayCache: ReplayCache, @unchecked Sendable {
  // `lock` protects `table`.
  private let lock = NSLock()
  private var table: ReplayTable

  /// - Parameters:
  ///   - retention: how long an accepted signature is remembered (twice the clock-skew limit).
  ///   - capacity: the most signatures held; beyond it the older half is forgotten and covered by
  ///     the floor.
  ///   - refusingSignedBefore: requests signed before this time are refused (the process start);
  ///     nil only where no earlier process could have accepted anything (tests).
  public init(retention: TimeInterval, capacity: Int = 1_000_000, refusingSignedBefore: Date?) {
    table = ReplayTable(retention: retention, capacity: capacity, floor: refusingSignedBefore)
  }

  public func check(_ key: String, signedAt: Date, now: Date) -> ReplayVerdict {
    lock.withLock { table.verdict(key, signedAt: signedAt, now: now) }
  }

  public func claim(_ key: String, signedAt: Date, now: Date) -> ReplayVerdict {
    lock.withLock {
      let verdict = table.verdict(key, signedAt: signedAt, now: now)
      if verdict == .fresh { _ = table.insert(key, signedAt: signedAt, now: now) }
      return verdict
    }
  }

  public var location: String { "memory" }
  public var isPersistent: Bool { false }
  var count: Int { lock.withLock { table.entries.count } }
}

/// A replay cache kept in an append-only file, so a restarted broker still refuses a replay.
///
/// One line per accepted signature, `a SIGNED_AT UNTIL KEY` (Unix seconds), and one per raised
/// floor, `f FLOOR UNTIL`; each is on disk (fsync) before `claim` returns `.fresh`, so no key is
/// accepted that a crash could make the cache forget. At open, and whenever the file holds many
/// more lines than live entries, it is rewritten with only the live ones (mode 0600, then renamed
/// over the old file). A torn last line (a crash mid-write) is ignored: its push was never
/// accepted.
// Sendable: `path` and `isNew` are constants; `table`, `fd` and `lines` are behind `lock`.
public final class FileReplayCache: ReplayCache, @unchecked Sendable {
  public let path: String
  /// Whether the file did not exist when the cache was opened.
  public let isNew: Bool
  // `lock` protects `table`, `fd` and `lines`.
  private let lock = NSLock()
  private var table: ReplayTable
  private var fd: Int32
  /// Lines in the file now, to decide when to compact.
  private var lines = 0

  /// Opens (creating it 0600) the cache at `path`, dropping entries that have expired.
  /// - Parameter refusingSignedBeforeIfNew: when the file does not exist (first start, or it was
  ///   lost), nothing accepted before can be vouched for: requests signed before this time (the
  ///   start) are refused, as `MemoryReplayCache` does. `isNew` tells.
  /// - Throws: `ReplayCacheError` naming the path and the system's reason.
  public init(
    path: String, retention: TimeInterval, capacity: Int = 1_000_000, now: Date,
    refusingSignedBeforeIfNew: Date? = nil
  ) throws {
    self.path = path
    var table = ReplayTable(retention: retention, capacity: capacity, floor: nil)
    if let data = FileManager.default.contents(atPath: path) {
      isNew = false
      for line in data.split(separator: UInt8(ascii: "\n")) {
        FileReplayCache.load(line: Array(line), into: &table, now: now)
      }
    } else if FileManager.default.fileExists(atPath: path) {
      throw ReplayCacheError("cannot read the replay cache '\(path)'; expected a file the broker can read.")
    } else {
      isNew = true
      if let start = refusingSignedBeforeIfNew { table.floor = start }
    }
    self.table = table
    fd = -1
    try lock.withLock { try compact() }
  }

  deinit { if fd >= 0 { close(fd) } }

  static func load(line: [UInt8], into table: inout ReplayTable, now: Date) {
    let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
    func seconds(_ field: ArraySlice<UInt8>) -> Date? {
      guard (1...12).contains(field.count), field.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
        let value = Int(String(decoding: field, as: UTF8.self))
      else { return nil }
      return Date(timeIntervalSince1970: TimeInterval(value))
    }
    guard let kind = fields.first, kind.count == 1 else { return }
    if kind.first == UInt8(ascii: "a"), fields.count == 4, let signedAt = seconds(fields[1]),
      let until = seconds(fields[2]), (1...256).contains(fields[3].count),
      fields[3].allSatisfy({ $0 > 0x20 && $0 < 0x7F })
    {
      guard until > now else { return }
      table.entries[String(decoding: fields[3], as: UTF8.self)] = ReplayTable.Entry(
        signedAt: signedAt, until: until)
    } else if kind.first == UInt8(ascii: "f"), fields.count == 3, let floor = seconds(fields[1]),
      let until = seconds(fields[2])
    {
      guard until > now else { return }
      table.floor = max(table.floor ?? floor, floor)
    }
  }

  static func entryLine(_ key: String, _ entry: ReplayTable.Entry) -> String {
    "a \(Int64(entry.signedAt.timeIntervalSince1970)) \(Int64(entry.until.timeIntervalSince1970.rounded(.up))) \(key)\n"
  }

  func floorLine(_ floor: Date) -> String {
    let until = floor.addingTimeInterval(table.retention)
    return "f \(Int64(floor.timeIntervalSince1970)) \(Int64(until.timeIntervalSince1970.rounded(.up)))\n"
  }

  /// Rewrites the file with the live entries only and reopens it for appending. Under `lock`.
  private func compact() throws {
    var text = ""
    if let floor = table.floor { text += floorLine(floor) }
    for (key, entry) in table.entries { text += FileReplayCache.entryLine(key, entry) }
    let temporary = path + ".compacting"
    unlink(temporary)
    let out = open(temporary, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
    guard out >= 0 else {
      throw ReplayCacheError(
        "cannot write the replay cache '\(path)' (creating '\(temporary)' failed: \(String(cString: strerror(errno)))); expected a directory the broker may write to."
      )
    }
    let bytes = Array(text.utf8)
    let ok =
      bytes.withUnsafeBytes { write(out, $0.baseAddress, $0.count) } == bytes.count && fsync(out) == 0
    let failure = errno
    close(out)
    guard ok, rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(ok ? errno : failure))
      unlink(temporary)
      throw ReplayCacheError("cannot write the replay cache '\(path)': \(reason).")
    }
    FileReplayCache.syncDirectory(of: path)
    let reopened = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
    guard reopened >= 0 else {
      throw ReplayCacheError(
        "cannot open the replay cache '\(path)': \(String(cString: strerror(errno))).")
    }
    if fd >= 0 { close(fd) }
    fd = reopened
    lines = table.entries.count + (table.floor == nil ? 0 : 1)
  }

  static func syncDirectory(of path: String) {
    let directory = (path as NSString).deletingLastPathComponent
    let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 {
      fsync(dfd)
      close(dfd)
    }
  }

  public func check(_ key: String, signedAt: Date, now: Date) -> ReplayVerdict {
    lock.withLock { table.verdict(key, signedAt: signedAt, now: now) }
  }

  public func claim(_ key: String, signedAt: Date, now: Date) throws -> ReplayVerdict {
    try lock.withLock {
      let verdict = table.verdict(key, signedAt: signedAt, now: now)
      guard verdict == .fresh else { return verdict }
      var text = ""
      if let floor = table.insert(key, signedAt: signedAt, now: now) { text += floorLine(floor) }
      if let entry = table.entries[key] { text += FileReplayCache.entryLine(key, entry) }
      let bytes = Array(text.utf8)
      // Written and flushed under the lock: a claim returns only once its line is on disk, and a
      // compaction never swaps the file under a flush in progress.
      guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
        throw ReplayCacheError(
          "cannot write to the replay cache '\(path)': \(String(cString: strerror(errno))).")
      }
      guard fdatasync(fd) == 0 else {
        throw ReplayCacheError(
          "cannot flush the replay cache '\(path)' to disk: \(String(cString: strerror(errno))).")
      }
      lines += bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
      if lines > 2 * table.entries.count + 4096 {
        table.expire(now: now)
        try compact()
      }
      return .fresh
    }
  }

  public var location: String { path }
  public var isPersistent: Bool { true }
  var count: Int { lock.withLock { table.entries.count } }
}

public struct ReplayCacheError: Error, CustomStringConvertible, Sendable {
  public var description: String
  init(_ description: String) { self.description = description }
}
