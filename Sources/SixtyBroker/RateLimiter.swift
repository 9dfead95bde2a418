import Foundation
import SixtyCore

/// Per-principal token buckets for key pushes.
// Sendable: `limits` is constant and `buckets`, the only mutable state, is behind `lock`.
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
