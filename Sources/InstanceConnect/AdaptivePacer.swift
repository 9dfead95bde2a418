import Foundation
import Synchronization

/// Client-side pacing that follows the endpoint, as the AWS SDKs' adaptive retry mode does: no
/// pacing until the endpoint throttles; then a token bucket whose rate drops to 70 % of the rate
/// that was being sent, and grows back along a cubic curve (CUBIC congestion control: slowly near
/// the rate that was throttled, faster further from it), never above twice the measured send rate.
/// One pacer is shared by every push of a run.
///
/// Three departures from the SDKs, for runs that push to many hosts at once (where a burst and its
/// retries make the send rate say little about what the endpoint takes):
/// - the rate that was throttled is the rate of answers the endpoint accepted over the last second
///   (raised by answers that arrive in the second after the lowering), not the rate requests were
///   sent at (which counts the throttled ones and their retries);
/// - one throttling episode lowers the rate once: a throttled request sent before the latest
///   lowering, or answered within a second of it, says nothing new (like TCP, one decrease per
///   round trip), so fifty throttled answers to one burst do not divide the rate by 0.7⁵⁰;
/// - once paced, one episode lowers the rate to no less than 0.7² of what it was, however few
///   answers the last second saw (a stall of answers is not a measure of the endpoint's limit);
/// - once paced, the bucket holds a tenth of a second's worth of requests, so they go out evenly
///   instead of in bursts that an endpoint's own bucket would throttle.
///
/// With a `ceiling` (a policy's `push.rate` and `push.burst`), the bucket never fills faster than
/// it, throttled or not.
public final class AdaptivePacer: Sendable {
  public struct Ceiling: Sendable, Equatable {
    public var rate: Double
    public var burst: Int
    public init(rate: Double, burst: Int) {
      self.rate = rate
      self.burst = max(1, burst)
    }
  }

  /// What a run's pushes went through, for plans and reports.
  public struct Summary: Sendable, Equatable {
    /// Requests sent and throttled answers.
    public var requests: Int
    public var throttled: Int
    /// Times the rate was lowered (throttling episodes).
    public var lowered: Int
    /// The bucket's rate now and its lowest (nil while unpaced).
    public var rate: Double?
    public var lowestRate: Double?
    /// The smoothed send rate measured.
    public var measuredRate: Double
    public var ceiling: Ceiling?
  }

  /// When a request was let through (for `record`).
  public struct Ticket: Sendable {
    let sentAt: Double
  }

  static let minimumRate = 0.5
  static let beta = 0.7
  static let scale = 0.4
  static let smoothing = 0.8
  /// The shortest time between two lowerings.
  static let episode = 1.0

  struct State {
    var paced = false
    var rate = 0.0
    var capacity = 1.0
    var tokens = 1.0
    var last: Double
    var measured = 0.0
    var bucketStart: Double
    var bucketCount = 0
    var measuredOnce = false
    var lastMaxRate = 0.0
    var lastThrottle: Double
    var window = 0.0
    var requests = 0
    var throttled = 0
    var lowered = 0
    var lowest: Double?
    /// Accepted answers in the current tenth of a second and the nine before it.
    var accepted = [Int](repeating: 0, count: 10)
    var acceptedSlot: Int
  }

  public let ceiling: Ceiling?
  let clock: @Sendable () -> Double
  let sleep: @Sendable (Double) async -> Void
  let state: Mutex<State>

  /// - Parameters:
  ///   - clock: seconds on a monotonic scale (injectable for tests).
  ///   - sleep: waits that many seconds (injectable for tests).
  public init(
    ceiling: Ceiling? = nil,
    clock: @escaping @Sendable () -> Double = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 },
    sleep: @escaping @Sendable (Double) async -> Void = { try? await Task.sleep(for: .seconds($0)) }
  ) {
    self.ceiling = ceiling
    self.clock = clock
    self.sleep = sleep
    let now = clock()
    var state = State(
      last: now, bucketStart: now, lastThrottle: now, acceptedSlot: Int((now * 10).rounded(.down)))
    if let ceiling {
      state.rate = ceiling.rate
      state.capacity = Double(ceiling.burst)
      state.tokens = state.capacity
    }
    self.state = Mutex(state)
  }

  /// Waits until a request may be sent.
  public func acquire() async -> Ticket {
    while true {
      let now = clock()
      let wait = state.withLock { state -> Double in
        guard state.paced || ceiling != nil else { return 0 }
        Self.refill(&state, now: now)
        if state.tokens >= 1 {
          state.tokens -= 1
          return 0
        }
        return max(0.001, (1 - state.tokens) / state.rate)
      }
      if wait == 0 { return Ticket(sentAt: now) }
      await sleep(wait)
    }
  }

  /// Notes the answer to a request let through at `ticket`: `throttled` when the endpoint said
  /// to slow down.
  public func record(_ ticket: Ticket, throttled: Bool) {
    let now = clock()
    state.withLock { state in
      state.requests += 1
      Self.measure(&state, now: now)
      Self.advanceAccepted(&state, now: now)
      if !throttled { state.accepted[state.acceptedSlot % 10] += 1 }
      // What the endpoint took over the last second (at least one answer's worth).
      let taken = max(Double(state.accepted.reduce(0, +)), 1)
      let calculated: Double
      var episodeFloor = 0.0
      let wasPaced = state.paced
      let newEpisode =
        state.lowered == 0
        || (ticket.sentAt >= state.lastThrottle && now - state.lastThrottle >= Self.episode)
      if throttled, newEpisode {
        state.throttled += 1
        // Once paced, one episode lowers the rate at most twice (to 49 %): answers that stall
        // for a moment (a busy endpoint, a busy client) make the last second's count say less
        // than the endpoint takes, and one such reading must not take the pace to its floor.
        let sending = state.paced ? max(min(taken, state.rate), state.rate * Self.beta) : taken
        if state.paced { episodeFloor = state.rate * Self.beta * Self.beta }
        state.lastMaxRate = sending
        state.window = Self.window(lastMaxRate: sending)
        state.lastThrottle = now
        state.paced = true
        state.lowered += 1
        calculated = sending * Self.beta
      } else {
        if throttled { state.throttled += 1 }
        guard state.paced else { return }
        // Answers to requests sent before the lowering still arrive for a while: what the
        // endpoint took in that time is the better measure of the rate that was throttled.
        if now - state.lastThrottle < 1, taken > state.lastMaxRate {
          state.lastMaxRate = taken
        } else if throttled {
          return
        }
        state.window = Self.window(lastMaxRate: state.lastMaxRate)
        calculated = Self.scale * pow(now - state.lastThrottle - state.window, 3) + state.lastMaxRate
      }
      // Never above twice the measured rate, as in the SDKs, but as a bound on growth only: a
      // moment with few answers does not lower a rate that nothing throttled.
      var rate = min(calculated, wasPaced ? max(2 * state.measured, state.rate) : 2 * state.measured)
      if let ceiling { rate = min(rate, ceiling.rate) }
      rate = max(rate, episodeFloor, Self.minimumRate)
      Self.refill(&state, now: now)
      state.rate = rate
      state.capacity = max(1, min(rate / 10, ceiling.map { Double($0.burst) } ?? rate))
      state.tokens = min(state.tokens, state.capacity)
      state.lowest = min(state.lowest ?? rate, rate)
    }
  }

  public var summary: Summary {
    state.withLock { state in
      Summary(
        requests: state.requests, throttled: state.throttled, lowered: state.lowered,
        rate: state.paced ? state.rate : ceiling?.rate, lowestRate: state.lowest ?? ceiling?.rate,
        measuredRate: state.measured, ceiling: ceiling)
    }
  }

  static func window(lastMaxRate: Double) -> Double {
    cbrt(lastMaxRate * (1 - beta) / scale)
  }

  static func refill(_ state: inout State, now: Double) {
    if now > state.last {
      state.tokens = min(state.capacity, state.tokens + (now - state.last) * state.rate)
      state.last = now
    }
  }

  /// Moves the accepted-answer window to `now`'s tenth of a second, emptying the tenths passed.
  static func advanceAccepted(_ state: inout State, now: Double) {
    let slot = Int((now * 10).rounded(.down))
    guard slot > state.acceptedSlot else { return }
    if slot - state.acceptedSlot >= 10 {
      state.accepted = [Int](repeating: 0, count: 10)
    } else {
      for passed in (state.acceptedSlot + 1)...slot { state.accepted[passed % 10] = 0 }
    }
    state.acceptedSlot = slot
  }

  /// The send rate, smoothed over half-second buckets.
  static func measure(_ state: inout State, now: Double) {
    state.bucketCount += 1
    let elapsed = now - state.bucketStart
    if elapsed >= 0.5 {
      let current = Double(state.bucketCount) / elapsed
      state.measured =
        state.measuredOnce ? current * smoothing + state.measured * (1 - smoothing) : current
      state.measuredOnce = true
      state.bucketStart = now
      state.bucketCount = 0
    } else if !state.measuredOnce {
      state.measured = Double(state.bucketCount) / max(elapsed, 0.05)
    }
  }
}
