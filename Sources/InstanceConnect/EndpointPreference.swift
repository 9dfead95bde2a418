import Foundation

/// Which endpoint a client's pushes try first: the one that last answered. A failover moves the
/// preference to the next endpoint at once, so pushes that start meanwhile skip the failed one;
/// `returnToFirstAfter` seconds after it moved away, the first endpoint is preferred again.
// Sendable: `preferred` and `since` are read and written only under `lock`, for a few
// instructions (never across an await).
final class EndpointPreference: @unchecked Sendable {
  let count: Int
  let returnToFirstAfter: Double
  private let lock = NSLock()
  private var preferred = 0
  private var since = Date.distantPast

  init(count: Int, returnToFirstAfter: Double) {
    self.count = count
    self.returnToFirstAfter = returnToFirstAfter
  }

  /// The order of one round: the preferred endpoint, then the others in the configured order.
  func order(now: Date) -> [Int] {
    guard count > 1 else { return [0] }
    let first: Int = lock.withLock {
      if preferred != 0, now.timeIntervalSince(since) >= returnToFirstAfter { preferred = 0 }
      return preferred
    }
    return [first] + (0..<count).filter { $0 != first }
  }

  /// The endpoint `index` answered: later pushes start with it.
  func answered(_ index: Int, now: Date) {
    lock.withLock {
      if preferred != index {
        preferred = index
        since = now
      }
    }
  }

  /// The endpoint `index` failed and `next` is tried now: if `index` was preferred, `next` is
  /// (unless another push already moved the preference on).
  func failed(_ index: Int, next: Int, now: Date) {
    lock.withLock {
      if preferred == index {
        preferred = next
        since = now
      }
    }
  }

  /// The preferred endpoint now (for tests).
  var current: Int { lock.withLock { preferred } }
}
