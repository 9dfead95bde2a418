import Foundation

/// Counts requests that failed before proving who sent them, per source address and period, so
/// that anyone who can reach the broker costs the audit log one summary record per source per
/// period instead of one record per request.
///
/// Memory is bounded: at most `capacity` sources are tracked; requests from further sources in the
/// same period go to one "other sources" bucket. Only reasons from the broker's own vocabulary
/// (`BrokerError.reason`) are kept, never text from the request.
// Sendable: `capacity` and `period` are constants; the entries and the period are behind `lock`.
final class UnauthenticatedTally: @unchecked Sendable {
  struct Entry: Equatable {
    var count: Int
    var first: String
    var last: String
    var firstAt: Date
    var lastAt: Date
  }

  /// One summary: `source` nil for the "other sources" bucket.
  struct Summary: Equatable {
    var source: String?
    var entry: Entry
  }

  // `lock` protects everything below.
  private let lock = NSLock()
  private var entries: [String: Entry] = [:]
  private var other: Entry?
  private var periodStart: Date?
  let capacity: Int
  let period: TimeInterval

  init(capacity: Int = 4096, period: TimeInterval = 60) {
    self.capacity = max(1, capacity)
    self.period = period
  }

  /// Counts one refusal. Returns the summaries of the previous period when it has ended.
  func note(source: String?, reason: String, now: Date) -> [Summary] {
    lock.withLock {
      let due = drainIfDue(now: now, force: false)
      if periodStart == nil { periodStart = now }
      let key = UnauthenticatedTally.sourceKey(source)
      if var entry = entries[key] {
        entry.count += 1
        entry.last = reason
        entry.lastAt = now
        entries[key] = entry
      } else if entries.count < capacity {
        entries[key] = Entry(count: 1, first: reason, last: reason, firstAt: now, lastAt: now)
      } else if var bucket = other {
        bucket.count += 1
        bucket.last = reason
        bucket.lastAt = now
        other = bucket
      } else {
        other = Entry(count: 1, first: reason, last: reason, firstAt: now, lastAt: now)
      }
      return due
    }
  }

  /// The summaries of a period that has ended (or of the current one, with `force`).
  func flush(now: Date, force: Bool) -> [Summary] {
    lock.withLock { drainIfDue(now: now, force: force) }
  }

  /// Under `lock`.
  private func drainIfDue(now: Date, force: Bool) -> [Summary] {
    guard let start = periodStart, force || now.timeIntervalSince(start) >= period else { return [] }
    var out = entries.sorted { $0.value.firstAt < $1.value.firstAt }.map {
      Summary(source: $0.key, entry: $0.value)
    }
    if let other { out.append(Summary(source: nil, entry: other)) }
    entries = [:]
    other = nil
    periodStart = nil
    return out
  }

  /// The table key for a peer address: the address as the server reported it (bounded), or
  /// "unknown".
  static func sourceKey(_ source: String?) -> String {
    guard let source, (1...64).contains(source.utf8.count),
      source.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
    else { return "unknown" }
    return source
  }

  var trackedSources: Int { lock.withLock { entries.count } }
}
