import Foundation
import Synchronization
import Testing

@testable import InstanceConnect

/// The adaptive pacer against a simulated endpoint that takes `limit` requests a second, on a
/// simulated clock (no test sleeps).
@Suite struct AdaptivePacerTests {
  final class Clock: Sendable {
    let now = Mutex(1000.0)
    func read() -> Double { now.withLock { $0 } }
    func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
  }

  /// An endpoint's token bucket (like `sixty broker`'s per principal).
  struct Endpoint {
    var rate: Double
    var burst: Double
    var tokens: Double
    var last: Double
    init(rate: Double, burst: Double, now: Double) {
      self.rate = rate
      self.burst = burst
      tokens = burst
      last = now
    }
    mutating func take(_ now: Double) -> Bool {
      tokens = min(burst, tokens + (now - last) * rate)
      last = now
      guard tokens >= 1 else { return false }
      tokens -= 1
      return true
    }
  }

  /// Sends `count` requests one after another (each retried until taken), each answered at once;
  /// returns how many were throttled and when the last was taken.
  func drive(
    _ pacer: AdaptivePacer, clock: Clock, endpoint: inout Endpoint, count: Int, backoff: Double = 0.05
  )
    async -> (throttled: Int, end: Double)
  {
    var throttled = 0
    for _ in 0..<count {
      while true {
        let ticket = await pacer.acquire()
        let taken = endpoint.take(clock.read())
        pacer.record(ticket, throttled: !taken)
        if taken { break }
        throttled += 1
        clock.advance(backoff)
      }
      clock.advance(0.0001)
    }
    return (throttled, clock.read())
  }

  @Test func anEndpointThatNeverThrottlesIsNeverPaced() async {
    let clock = Clock()
    let pacer = AdaptivePacer(clock: { clock.read() }, sleep: { clock.advance($0) })
    var endpoint = Endpoint(rate: 1e9, burst: 1e9, now: clock.read())
    let start = clock.read()
    let (throttled, end) = await drive(pacer, clock: clock, endpoint: &endpoint, count: 2000)
    #expect(throttled == 0)
    #expect(end - start < 0.5)  // 2000 requests at 0.1 ms each: no waiting added
    let summary = pacer.summary
    #expect(summary.rate == nil && summary.lowered == 0 && summary.requests == 2000)
  }

  @Test func theRateSettlesNearWhatTheEndpointTakes() async {
    let clock = Clock()
    let pacer = AdaptivePacer(clock: { clock.read() }, sleep: { clock.advance($0) })
    var endpoint = Endpoint(rate: 30, burst: 30, now: clock.read())
    let start = clock.read()
    let (throttled, end) = await drive(pacer, clock: clock, endpoint: &endpoint, count: 600)
    let summary = pacer.summary
    // 600 requests at 30/s take at least 19 s after the first burst of 30; adaptive pacing gets
    // close to that, and throttling stays a small fraction of the requests.
    let rate = 600 / (end - start)
    #expect(rate > 24 && rate <= 31.6, "achieved \(rate)/s")
    #expect(throttled < 120, "\(throttled) throttled answers")
    #expect(summary.lowered >= 1)
    let final = summary.rate ?? 0
    #expect(final > 10 && final < 60, "pace at the end \(final)")
  }

  @Test func oneBurstOfThrottledAnswersLowersTheRateOnce() {
    let clock = Clock()
    let pacer = AdaptivePacer(clock: { clock.read() }, sleep: { clock.advance($0) })
    // 50 requests sent together before any answer; 20 of them throttled.
    let tickets = (0..<50).map { _ in AdaptivePacer.Ticket(sentAt: clock.read()) }
    clock.advance(0.01)
    for (index, ticket) in tickets.enumerated() { pacer.record(ticket, throttled: index >= 30) }
    let summary = pacer.summary
    #expect(summary.throttled == 20)
    #expect(summary.lowered == 1)
    // 70 % of what the endpoint took over the last second (30 accepted): 21/s.
    #expect(abs((summary.rate ?? 0) - 21) < 0.01, "\(String(describing: summary.rate))")
  }

  @Test func aCeilingIsNeverExceededEvenUnthrottled() async {
    let clock = Clock()
    let pacer = AdaptivePacer(
      ceiling: .init(rate: 10, burst: 5), clock: { clock.read() }, sleep: { clock.advance($0) })
    var endpoint = Endpoint(rate: 1e9, burst: 1e9, now: clock.read())
    let start = clock.read()
    let (throttled, end) = await drive(pacer, clock: clock, endpoint: &endpoint, count: 105)
    #expect(throttled == 0)
    // 5 at once, then 100 at 10/s.
    #expect(abs((end - start) - 10) < 0.2, "\(end - start) s")
    #expect(pacer.summary.rate == 10)
  }

  @Test func aThrottledAnswerToARequestSentAfterTheLoweringLowersAgainAfterASecond() {
    let clock = Clock()
    let pacer = AdaptivePacer(clock: { clock.read() }, sleep: { clock.advance($0) })
    for _ in 0..<100 {
      pacer.record(AdaptivePacer.Ticket(sentAt: clock.read()), throttled: false)
      clock.advance(0.01)
    }
    pacer.record(AdaptivePacer.Ticket(sentAt: clock.read()), throttled: true)
    let first = pacer.summary.rate ?? 0
    clock.advance(0.01)
    let late = AdaptivePacer.Ticket(sentAt: clock.read())
    clock.advance(0.01)
    // Within a second of the lowering: the same episode.
    pacer.record(late, throttled: true)
    #expect(pacer.summary.lowered == 1)
    let later = AdaptivePacer.Ticket(sentAt: clock.read())
    clock.advance(1.5)
    pacer.record(later, throttled: true)
    let second = pacer.summary.rate ?? 0
    #expect(pacer.summary.lowered == 2)
    #expect(second < first)
    #expect(second >= AdaptivePacer.minimumRate)
  }

  @Test func answersThatStallDoNotTakeThePaceToItsFloor() async {
    let clock = Clock()
    let pacer = AdaptivePacer(clock: { clock.read() }, sleep: { clock.advance($0) })
    var endpoint = Endpoint(rate: 30, burst: 30, now: clock.read())
    _ = await drive(pacer, clock: clock, endpoint: &endpoint, count: 300)
    let before = pacer.summary
    let paced = before.rate ?? 0
    #expect(paced > 10, "\(before)")
    // Answers stall for 1.2 s (a busy machine), then one comes back throttled: the last second
    // saw no accepted answer, yet the pace falls to no less than 0.7² of what it was.
    clock.advance(1.2)
    let late = await pacer.acquire()
    clock.advance(0.01)
    pacer.record(late, throttled: true)
    let after = pacer.summary
    #expect(after.lowered == before.lowered + 1)
    #expect((after.rate ?? 0) >= paced * 0.49 - 0.01, "\(paced) -> \(String(describing: after.rate))")
    #expect((after.rate ?? 0) < paced)
    // Answers that come back accepted after the stall do not lower it further.
    let lowered = after.rate ?? 0
    for _ in 0..<3 {
      clock.advance(0.3)
      pacer.record(await pacer.acquire(), throttled: false)
      #expect((pacer.summary.rate ?? 0) >= lowered - 0.01, "\(pacer.summary)")
    }
  }
}
