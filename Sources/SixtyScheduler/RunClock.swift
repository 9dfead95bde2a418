import Dispatch
import Foundation

/// Time and timers for the scheduler. Every callback runs on the scheduler's serial queue.
public protocol RunClock: Sendable {
  /// Seconds on a monotonic scale.
  func now() -> Double
  /// Calls `block` on `queue` after `seconds`; the returned token cancels it.
  func after(_ seconds: Double, on queue: DispatchQueue, _ block: @escaping @Sendable () -> Void)
    -> TimerToken
}

/// Cancels a pending timer.
// Sendable: `cancelBlock` is immutable, and the scheduler calls it only on its queue.
public final class TimerToken: @unchecked Sendable {
  private let cancelBlock: () -> Void
  init(_ cancel: @escaping () -> Void) { cancelBlock = cancel }
  public func cancel() { cancelBlock() }
}

/// The real clock: `DispatchSourceTimer`s on the scheduler's queue, no busy waiting.
public struct DispatchRunClock: RunClock {
  public init() {}

  public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

  public func after(_ seconds: Double, on queue: DispatchQueue, _ block: @escaping @Sendable () -> Void)
    -> TimerToken
  {
    let timer = DispatchSource.makeTimerSource(queue: queue)
    timer.schedule(deadline: .now() + max(0, seconds), leeway: .milliseconds(5))
    timer.setEventHandler {
      timer.cancel()
      block()
    }
    timer.resume()
    return TimerToken { timer.cancel() }
  }
}

/// A clock for tests: time moves only when `advance` is called, and due timers fire in order,
/// inline, on the calling thread (which must be the scheduler's queue).
// Sendable: its state is read and written only on the scheduler's queue, where tests drive it.
public final class ManualRunClock: RunClock, @unchecked Sendable {
  struct Pending {
    var id: Int
    var due: Double
    var block: @Sendable () -> Void
  }
  // Only touched on the scheduler's queue.
  private var current: Double = 0
  private var pending: [Pending] = []
  private var nextID = 0

  public init() {}

  public func now() -> Double { current }

  public func after(_ seconds: Double, on queue: DispatchQueue, _ block: @escaping @Sendable () -> Void)
    -> TimerToken
  {
    nextID += 1
    let id = nextID
    pending.append(Pending(id: id, due: current + max(0, seconds), block: block))
    return TimerToken { [weak self] in self?.pending.removeAll { $0.id == id } }
  }

  /// Fires every timer due up to `now + seconds`, in due order, moving time to each.
  public func advance(_ seconds: Double) {
    let end = current + seconds
    while let next = pending.filter({ $0.due <= end }).min(by: { ($0.due, $0.id) < ($1.due, $1.id) }) {
      pending.removeAll { $0.id == next.id }
      current = max(current, next.due)
      next.block()
    }
    current = end
  }

  /// Runs until no timers remain (or `limit` seconds pass).
  public func runUntilIdle(limit: Double = 86_400) {
    let end = current + limit
    while let next = pending.min(by: { ($0.due, $0.id) < ($1.due, $1.id) }), next.due <= end {
      pending.removeAll { $0.id == next.id }
      current = max(current, next.due)
      next.block()
    }
  }

  public var pendingCount: Int { pending.count }
}
