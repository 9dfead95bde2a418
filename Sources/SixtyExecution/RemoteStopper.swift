import Foundation
import SixtyProcess

/// Stops remote task processes by name: a `pkill` over the host's master connection. Each task's
/// remote process is named by the run's marker (see `RemoteCommand.wrapped`), so one task, or
/// every task of a host, can be found. The `pkill` helpers still running are tracked, so that
/// closing waits for them (and ends those that hang): nothing outlives the run.
// Sendable: `stoppers`, the only mutable state, is behind `lock`; `helpers` is a DispatchGroup.
final class RemoteStopper: @unchecked Sendable {
  /// Names this run's remote task processes (their `$0`), so they can be found and stopped.
  let marker: String
  private let lock = NSLock()
  private var stoppers: [UUID: ChildProcess] = [:]
  /// Entered for every helper, left when it has exited.
  private let helpers = DispatchGroup()

  init(marker: String = RemoteStopper.randomMarker()) { self.marker = marker }

  static func randomMarker() -> String {
    "sixty-task-" + (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
  }

  /// The marker of one task of the host numbered `host`.
  func taskMarker(host: Int, task: Int) -> String { "\(marker)-\(host)-\(task)" }

  /// The prefix of every task marker of the host numbered `host`.
  func hostPrefix(host: Int) -> String { "\(marker)-\(host)-" }

  /// The `pkill -f` pattern for names starting with `prefix` (or equal to it, when `exact`):
  /// "sixty-tas[k]-…" does not match the shell that runs pkill itself.
  static func pattern(prefix: String, exact: Bool) -> String {
    prefix.replacingOccurrences(of: "sixty-task-", with: "sixty-tas[k]-") + (exact ? "$" : "")
  }

  /// Runs `arguments` (an ssh `pkill` command line); calls `then` once, when the remote side
  /// answered or after `timeout` seconds, whichever is first (at once when it cannot start).
  func stop(_ arguments: [String], timeout: Double = 3, then: (@Sendable () -> Void)? = nil) {
    let once = Once()
    let id = UUID()
    helpers.enter()
    guard
      let child = try? ChildProcess.run(
        arguments, cap: 4096,
        completion: { [self] _ in
          lock.withLock { _ = stoppers.removeValue(forKey: id) }
          helpers.leave()
          if once.claim() { then?() }
        })
    else {
      helpers.leave()
      then?()
      return
    }
    lock.withLock { stoppers[id] = child }
    guard let then else { return }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { if once.claim() { then() } }
  }

  /// Waits up to 3 s for the helpers still running, then kills those left and waits up to 2 s
  /// more, without blocking a thread.
  func finish() async {
    if await !helpers.settled(within: 3) {
      for child in lock.withLock({ Array(stoppers.values) }) { child.terminate(SIGKILL) }
      _ = await helpers.settled(within: 2)
    }
  }
}

/// True for the first caller only.
// Sendable: `done`, the only mutable state, is behind `lock`.
final class Once: @unchecked Sendable {
  private let lock = NSLock()
  private var done = false
  func claim() -> Bool {
    lock.withLock {
      defer { done = true }
      return !done
    }
  }
}

extension DispatchGroup {
  /// Whether every member left within `seconds`; waits without blocking a thread.
  func settled(within seconds: Double) async -> Bool {
    // Already empty: no suspension (a zero timeout does not block).
    if wait(timeout: .now()) == .success { return true }
    return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
      let once = Once()
      notify(queue: .global()) { if once.claim() { continuation.resume(returning: true) } }
      DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
        if once.claim() { continuation.resume(returning: false) }
      }
    }
  }
}
