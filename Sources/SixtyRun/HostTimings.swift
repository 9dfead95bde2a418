import Foundation
import SixtyScheduler

/// For `-v`: each host's key push and authentication as they happen, said as `RunEvent.detail`
/// lines: how long the push took (from its start, pacing included), and how long after the key
/// was in place the host authenticated.
// Sendable: `pushed`, the only mutable state, is behind `lock`.
final class HostTimings: @unchecked Sendable {
  let console: any RunConsole
  private let lock = NSLock()
  private var pushed: [String: UInt64] = [:]

  init(console: any RunConsole) { self.console = console }

  static var now: UInt64 { DispatchTime.now().uptimeNanoseconds }

  /// A push ended.
  func pushed(_ host: ScheduledHost, started: UInt64, outcome: PushOutcome, now: UInt64 = HostTimings.now) {
    let took = Self.milliseconds(now - started)
    switch outcome {
    case .pushed:
      lock.withLock { pushed[host.name] = now }
      console.handle(.detail(level: 1, "sixty: \(host.name): key pushed for \(host.user) in \(took) ms"))
    case .failed(let message):
      console.handle(.detail(level: 1, "sixty: \(host.name): key push failed after \(took) ms: \(message)"))
    }
  }

  /// The scheduler's events: authentication and reconnection.
  func handle(_ event: SchedulerEvent, now: UInt64 = HostTimings.now) {
    let line: String? = lock.withLock {
      switch event {
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

/// A pusher that tells `HostTimings` how each push went.
struct TimedPusher: KeyPusher {
  let inner: any KeyPusher
  let timings: HostTimings

  func push(host: ScheduledHost, completion: @escaping @Sendable (PushOutcome) -> Void) {
    let started = HostTimings.now
    inner.push(host: host) { [timings] outcome in
      timings.pushed(host, started: started, outcome: outcome)
      completion(outcome)
    }
  }
}
