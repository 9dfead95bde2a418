import Foundation
import SixtyProcess
import SixtyScheduler

/// The state of one master connection attempt of a host, as a pure state machine: connecting
/// (its control socket not seen yet), up (tasks are multiplexed over it), running its fused task
/// (a host's only task as the master's own session), closing (stopped by us, not exited yet),
/// closed (exited).
struct MasterConnection: Sendable, Equatable {
  enum State: Sendable, Equatable { case connecting, up, fusedTaskRunning, closing, closed }

  /// How to stop the master's process when it is closed.
  enum Stop: Sendable, Equatable {
    /// Nothing to stop: already closing or closed.
    case none
    /// A client still connecting: one SIGTERM (its exit then reports a failure nobody waits for).
    case client
    /// An authenticated master: SIGTERM until it exits (see `SSHExecutor.terminateMaster`).
    case master
  }

  /// Whether the master runs the host's only task as its own session.
  let fused: Bool
  private(set) var state: State = .connecting

  init(fused: Bool) { self.fused = fused }

  /// The control socket appeared: the master has authenticated. True if that is news (the
  /// master was still connecting).
  mutating func socketSeen() -> Bool {
    guard state == .connecting else { return false }
    state = fused ? .fusedTaskRunning : .up
    return true
  }

  /// We close the connection: how to stop its process.
  mutating func close() -> Stop {
    switch state {
    case .connecting:
      state = .closing
      return .client
    case .up, .fusedTaskRunning:
      state = .closing
      return .master
    case .closing, .closed: return .none
    }
  }

  /// The master's process exited.
  mutating func exited() { state = .closed }

  /// Whether its socket is still awaited.
  var isConnecting: Bool { state == .connecting }

  /// Whether it is authenticated and open: tasks may run over it, and killing them all kills it.
  var isOpen: Bool { state == .up || state == .fusedTaskRunning }
}

/// One master connection attempt; reported once, as authenticated or failed.
// Sendable: `once` guards the report; `child` is set once, under the executor's lock, before
// the attempt is shared, and only read after.
final class ConnectAttempt: @unchecked Sendable {
  let completion: @Sendable (ConnectOutcome) -> Void
  private let once = Once()
  var child: ChildProcess?
  init(completion: @escaping @Sendable (ConnectOutcome) -> Void) { self.completion = completion }
  /// True for the first caller only.
  func finish() -> Bool { once.claim() }
}

/// The only task of a fused host: its outcome arrives when the master exits, its completion
/// when the scheduler runs it; whichever comes second delivers.
// Sendable: `completion`, `result` and `startedAt`, the only mutable state, are behind `lock`.
final class FusedTask: @unchecked Sendable {
  private let lock = NSLock()
  private var completion: (@Sendable (TaskOutcome) -> Void)?
  private var result: (TaskOutcome, TaskCapture)?
  private var startedAt = Date()

  var started: Date { lock.withLock { startedAt } }
  func markStarted() { lock.withLock { startedAt = Date() } }

  /// The outcome, if the task already ended; otherwise the completion is kept for `finish`.
  func attach(_ completion: @escaping @Sendable (TaskOutcome) -> Void) -> (TaskOutcome, TaskCapture)? {
    lock.withLock {
      if let result { return result }
      self.completion = completion
      return nil
    }
  }

  /// The completion to call, if the scheduler already asked for the task.
  func finish(_ outcome: TaskOutcome, _ capture: TaskCapture) -> (@Sendable (TaskOutcome) -> Void)? {
    lock.withLock {
      if let completion {
        self.completion = nil
        return completion
      }
      result = (outcome, capture)
      return nil
    }
  }
}
