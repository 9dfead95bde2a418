import Foundation
import SixtyScheduler

/// For `-v`: each host's key push and authentication as they happen, timed from the scheduler's
/// events (push started, key pushed, authenticated), said as `RunEvent.detail` lines.
// Sendable: `pushStarted` and `pushed`, the only mutable state, are behind `lock`.
final class HostTimings: @unchecked Sendable {
  let console: any RunConsole
  private let lock = NSLock()
  private var pushStarted: [String: UInt64] = [:]
  private var pushed: [String: UInt64] = [:]

  init(console: any RunConsole) { self.console = console }

  func handle(_ event: SchedulerEvent, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
    let line: String? = lock.withLock {
      switch event {
      case .push(let host), .pushAhead(let host):
        pushStarted[host] = now
        return nil
      case .connect(let host):
        pushed[host] = now
        guard let started = pushStarted[host] else { return nil }
        return "sixty: \(host): key pushed in \(Self.milliseconds(now - started)) ms; connecting"
      case .authenticated(let host):
        guard let keyAt = pushed[host] else { return "sixty: \(host): authenticated" }
        return "sixty: \(host): authenticated \(Self.milliseconds(now - keyAt)) ms after the key push"
      case .reconnect(let host):
        return "sixty: \(host): connection lost; pushing again and reconnecting"
      default:
        return nil
      }
    }
    if let line { console.handle(.detail(level: 1, line)) }
  }

  static func milliseconds(_ nanoseconds: UInt64) -> Int { Int((Double(nanoseconds) / 1e6).rounded()) }
}
