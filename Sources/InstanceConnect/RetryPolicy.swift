import Foundation

/// Exponential backoff with full jitter: attempt n waits a random time in [0, min(cap, base·2ⁿ)].
public struct RetryPolicy: Sendable {
  public var maxAttempts: Int
  public var base: Double
  public var cap: Double
  /// A random number in [0, 1); injectable for deterministic tests.
  public var random: @Sendable () -> Double
  /// Waits the given number of seconds; injectable so tests do not sleep.
  public var sleep: @Sendable (Double) async throws -> Void

  public init(
    maxAttempts: Int = 5, base: Double = 0.1, cap: Double = 5,
    random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
    sleep: @escaping @Sendable (Double) async throws -> Void = {
      try await Task.sleep(nanoseconds: UInt64($0 * 1e9))
    }
  ) {
    self.maxAttempts = max(1, maxAttempts)
    self.base = base
    self.cap = cap
    self.random = random
    self.sleep = sleep
  }

  /// The wait before retry number `attempt` (0 for the first retry).
  public func delay(attempt: Int) -> Double {
    random() * min(cap, base * pow(2, Double(min(attempt, 30))))
  }

  public static let none = RetryPolicy(maxAttempts: 1)
}
