import Dispatch
import Foundation
import Synchronization
import Testing

@testable import SixtyScheduler

/// A run-wide failure count that other runners (shards) add to, as the test says.
final class FakeSharedFailures: SharedFailureCount {
  let others = Mutex(0)
  let own = Mutex(0)
  var scope: String { "across the run's 4 shards" }
  func hostFailed() { own.withLock { $0 += 1 } }
  var failedHosts: Int { others.withLock { $0 } + own.withLock { $0 } }
}

@Suite struct SharedFailureTests {
  let queue = DispatchQueue(label: "test.scheduler.shared")

  func hosts(_ count: Int) -> [ScheduledHost] {
    (1...count).map { ScheduledHost(name: "web-\($0)", user: "ops", tasks: [ScheduledTask(name: "work")]) }
  }

  func run(_ scheduler: Scheduler, clock: ManualRunClock, during: @escaping (Double) -> Void = { _ in })
    -> RunResult
  {
    nonisolated(unsafe) var result: RunResult?
    queue.sync {
      scheduler.start { result = $0 }
      var step = 0.0
      while result == nil && step < 1000 {
        during(clock.now())
        clock.advance(0.5)
        step += 0.5
      }
      clock.runUntilIdle()
    }
    return result!
  }

  @Test func failuresOfOtherShardsStopThisOneBeforeItsNextHost() {
    let clock = ManualRunClock()
    let fake = FakeFleet(clock: clock, queue: queue)
    let shared = FakeSharedFailures()
    let policy = SchedulePolicy(
      concurrency: 1, batches: [Array(0..<10)], failureThreshold: 3, sharedFailures: shared)
    let scheduler = Scheduler(
      hosts: hosts(10), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue)
    // Other shards fail 4 hosts while this one works on its second host.
    let result = run(scheduler, clock: clock) { now in
      if now >= 8 { shared.others.withLock { $0 = 4 } }
    }
    #expect(
      result.outcome == .aborted("4 hosts failed across the run's 4 shards, more than the threshold of 3"))
    // Its own hosts all succeeded: those that started finished ok, the rest never started.
    let started = result.hosts.filter { $0.status != .notStarted }
    #expect(started.allSatisfy { $0.status == .ok })
    #expect(started.count >= 1 && started.count <= 3, "\(started.count)")
    #expect(shared.own.withLock { $0 } == 0)
  }

  @Test func ownFailuresAreCountedForTheOtherShardsAndAddUp() {
    let clock = ManualRunClock()
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.refuse = ["web-1", "web-2"]
    let shared = FakeSharedFailures()
    shared.others.withLock { $0 = 2 }
    let policy = SchedulePolicy(
      concurrency: 1, batches: [Array(0..<10)], failureThreshold: 3, sharedFailures: shared)
    let scheduler = Scheduler(
      hosts: hosts(10), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue)
    let result = run(scheduler, clock: clock)
    // 2 elsewhere + 2 here > 3: the second failure here stops it.
    #expect(
      result.outcome == .aborted("4 hosts failed across the run's 4 shards, more than the threshold of 3"))
    #expect(shared.own.withLock { $0 } == 2)
    #expect(result.hosts[2...].allSatisfy { $0.status == .notStarted })
    #expect(fake.pushes.count == 2)
  }

  @Test func aRunPastItsThresholdBeforeThisShardStartsStartsNothing() {
    let clock = ManualRunClock()
    let fake = FakeFleet(clock: clock, queue: queue)
    let shared = FakeSharedFailures()
    shared.others.withLock { $0 = 5 }
    let policy = SchedulePolicy(
      concurrency: 2, batches: [Array(0..<4)], failureThreshold: 3, sharedFailures: shared)
    let scheduler = Scheduler(
      hosts: hosts(4), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue)
    let result = run(scheduler, clock: clock)
    #expect(
      result.outcome == .aborted("5 hosts failed across the run's 4 shards, more than the threshold of 3"))
    #expect(result.hosts.allSatisfy { $0.status == .notStarted })
    #expect(fake.pushes.isEmpty)
  }

  @Test func withoutAThresholdSharedFailuresChangeNothing() {
    let clock = ManualRunClock()
    let fake = FakeFleet(clock: clock, queue: queue)
    let shared = FakeSharedFailures()
    shared.others.withLock { $0 = 50 }
    let policy = SchedulePolicy(concurrency: 2, batches: [Array(0..<4)], sharedFailures: shared)
    let scheduler = Scheduler(
      hosts: hosts(4), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue)
    let result = run(scheduler, clock: clock)
    #expect(result.outcome == .completed)
    #expect(result.hosts.allSatisfy { $0.status == .ok })
  }
}
