/// A token bucket: `rate` tokens per second, holding at most `burst`.
///
/// Not thread-safe by itself; owners guard it (the broker with a lock per principal, the
/// scheduler on its state queue). Time is passed in, so tests control it.
public struct TokenBucket: Sendable {
  public let rate: Double
  public let burst: Double
  private var tokens: Double
  private var last: Double

  /// - Parameters:
  ///   - rate: tokens added per second (> 0).
  ///   - burst: the bucket's capacity; it starts full.
  ///   - now: the current time in seconds on any monotonic scale.
  public init(rate: Double, burst: Int, now: Double) {
    self.rate = rate
    self.burst = Double(max(1, burst))
    self.tokens = Double(max(1, burst))
    self.last = now
  }

  private mutating func refill(_ now: Double) {
    if now > last {
      tokens = min(burst, tokens + (now - last) * rate)
      last = now
    }
  }

  /// Takes one token if there is one.
  public mutating func take(now: Double) -> Bool {
    refill(now)
    guard tokens >= 1 else { return false }
    tokens -= 1
    return true
  }

  /// Seconds until a token will be available (0 when one is available now).
  public mutating func delay(now: Double) -> Double {
    refill(now)
    return tokens >= 1 ? 0 : (1 - tokens) / rate
  }
}
