import Foundation

/// The jobs daemon's time: what time it is, and sleeping until a later one. Tests use a manual
/// clock; the daemon reads no other.
public protocol JobsClock: Sendable {
  func now() -> Date
  /// Returns after `seconds` have passed on this clock.
  /// - Throws: `CancellationError` when the task is cancelled first.
  func sleep(for seconds: TimeInterval) async throws
}

/// The system's wall clock, with `Task.sleep`.
public struct SystemJobsClock: JobsClock {
  public init() {}
  public func now() -> Date { Date() }
  public func sleep(for seconds: TimeInterval) async throws {
    // A millisecond late rather than early: a fire is due at its time, not before it.
    try await Task.sleep(for: .milliseconds(Int64(seconds * 1000) + 1))
  }
}
