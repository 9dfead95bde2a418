import Foundation
import SixtyCore

/// Per-principal token buckets for key pushes.
final class RateLimiter: @unchecked Sendable {
  // `lock` protects `buckets`.
  private let lock = NSLock()
  private var buckets: [String: TokenBucket] = [:]
  private let limits: [String: (Double, Int)]

  init(principals: [BrokerConfig.Principal]) {
    var limits: [String: (Double, Int)] = [:]
    for p in principals { limits[p.accessKeyID] = (p.rate, p.burst) }
    self.limits = limits
  }

  func take(_ accessKeyID: String, now: Date) -> Bool {
    guard let (rate, burst) = limits[accessKeyID] else { return false }
    let seconds = now.timeIntervalSince1970
    return lock.withLock {
      var bucket = buckets[accessKeyID] ?? TokenBucket(rate: rate, burst: burst, now: seconds)
      let ok = bucket.take(now: seconds)
      buckets[accessKeyID] = bucket
      return ok
    }
  }
}

/// Signatures of accepted pushes, kept while their signing time is still inside the clock-skew
/// window, so a captured request cannot be sent again to push its key once more.
final class ReplayCache: @unchecked Sendable {
  // `lock` protects everything below.
  private let lock = NSLock()
  private var seen: [String: Date] = [:]
  private var insertions = 0
  let capacity: Int

  init(capacity: Int = 2_000_000) { self.capacity = capacity }

  func contains(_ signature: String, now: Date) -> Bool {
    lock.withLock { seen[signature].map { $0 > now } ?? false }
  }

  /// Remembers `signature` until `until`; expired entries are dropped as the cache grows.
  func insert(_ signature: String, until: Date, now: Date) {
    lock.withLock {
      seen[signature] = until
      insertions += 1
      if insertions % 4096 == 0 || seen.count > capacity {
        seen = seen.filter { $0.value > now }
        // Still full of live entries: forget the oldest half rather than grow without bound.
        if seen.count > capacity {
          let keep = seen.sorted { $0.value > $1.value }.prefix(capacity / 2)
          seen = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
      }
    }
  }

  var count: Int { lock.withLock { seen.count } }
}
