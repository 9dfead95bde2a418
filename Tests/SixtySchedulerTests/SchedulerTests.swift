import Dispatch
import Foundation
import Testing

@testable import SixtyScheduler

/// A pusher and executor whose every step takes clock time, recording what they were asked.
final class FakeFleet: KeyPusher, HostExecutor, @unchecked Sendable {
  let clock: ManualRunClock
  let queue: DispatchQueue
  var pushDelay = 0.2
  var connectDelay: [String: Double] = [:]
  var defaultConnectDelay = 1.0
  var refuse: Set<String> = []
  var taskDuration: [String: Double] = [:]  // "host/task" or "task"
  var defaultDuration = 5.0
  var exitCodes: [String: [Int32]] = [:]  // "host/task" -> codes per attempt
  var hang: Set<String> = []  // "host/task" never ends unless killed
  var drops: [String: Int] = [:]  // "host/task" -> how many times the connection drops under it
  // What happened:
  var pushes: [(String, Double)] = []
  var connects: [(String, Double)] = []
  var concurrentHosts = 0
  var maxConcurrentHosts = 0
  var connected: Set<String> = []
  var killed: [String] = []
  var started: [(String, Double)] = []

  init(clock: ManualRunClock, queue: DispatchQueue) {
    self.clock = clock
    self.queue = queue
  }

  func push(host: ScheduledHost, completion: @escaping @Sendable (PushOutcome) -> Void) {
    pushes.append((host.name, clock.now()))
    _ = clock.after(pushDelay, on: queue) { completion(.pushed) }
  }

  func connect(host: ScheduledHost, completion: @escaping @Sendable (ConnectOutcome) -> Void) {
    connects.append((host.name, clock.now()))
    concurrentHosts += 1
    maxConcurrentHosts = max(maxConcurrentHosts, concurrentHosts)
    connected.insert(host.name)
    let delay = connectDelay[host.name] ?? defaultConnectDelay
    _ = clock.after(delay, on: queue) { [self] in
      completion(refuse.contains(host.name) ? .failed("connection refused") : .authenticated)
    }
  }

  func run(host: ScheduledHost, task: Int, completion: @escaping @Sendable (TaskOutcome) -> Void) {
    let name = host.tasks[task].name
    let key = "\(host.name)/\(name)"
    started.append((key, clock.now()))
    if hang.contains(key) { return }
    if let left = drops[key], left > 0 {
      drops[key] = left - 1
      _ = clock.after(1, on: queue) { completion(.connectionLost("the master connection is gone")) }
      return
    }
    let duration = taskDuration[key] ?? taskDuration[name] ?? defaultDuration
    var code: Int32 = 0
    if var codes = exitCodes[key], !codes.isEmpty {
      code = codes.removeFirst()
      exitCodes[key] = codes
    }
    let final = code
    _ = clock.after(duration, on: queue) { completion(.exited(final)) }
  }

  func kill(host: ScheduledHost, task: Int) { killed.append("\(host.name)/\(host.tasks[task].name)") }

  func disconnect(host: ScheduledHost) {
    if connected.remove(host.name) != nil { concurrentHosts -= 1 }
  }
}

@Suite struct SchedulerTests {
  let clock = ManualRunClock()
  let queue = DispatchQueue(label: "test.scheduler")

  func hosts(_ count: Int, tasks: [ScheduledTask] = [ScheduledTask(name: "work")]) -> [ScheduledHost] {
    (1...count).map { ScheduledHost(name: "web-\($0)", user: "ops", tasks: tasks) }
  }

  /// Runs to completion on the manual clock and returns the result.
  func run(_ scheduler: Scheduler, until: Double = 100_000, interruptAt: [Double] = []) -> RunResult {
    let box = ResultBox()
    queue.sync {
      scheduler.start { box.result = $0 }
      for time in interruptAt {
        clock.advance(time - clock.now())
        scheduler.interrupt()
      }
      clock.runUntilIdle(limit: until)
    }
    return box.result!
  }

  final class ResultBox: @unchecked Sendable {
    var result: RunResult?
    var at: Double?
  }

  @Test func everyHostAuthenticatesInsideTheWindowOfItsPush() {
    // concurrency 2, 40 hosts, tasks of 5 s, TTL 60 s: the whole run lasts ~100 s, longer than
    // the TTL, so pushing at run start would fail; pushing per slot never does.
    let fake = FakeFleet(clock: clock, queue: queue)
    let list = hosts(40)
    let policy = SchedulePolicy(concurrency: 2, batches: [Array(0..<40)], ttl: 60, margin: 15)
    let result = run(
      Scheduler(hosts: list, policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.outcome == .completed)
    #expect(result.hosts.allSatisfy { $0.status == .ok })
    #expect(fake.maxConcurrentHosts == 2)
    #expect(clock.now() > 60)
    for host in result.hosts {
      let auth = try! #require(host.authenticated)
      let lastPush = host.pushes.last { $0 <= auth }!
      #expect(auth - lastPush <= 60 - 15)
      #expect(host.pushes.count == 1)
    }
    // No host is pushed before its slot opens: pushes come in pairs, 5+ s apart.
    let times = fake.pushes.map(\.1)
    #expect(times[2] >= times[0] + 5)
  }

  @Test func aSlowAuthenticationIsPushedAgainBeforeTheKeyLapses() {
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.connectDelay = ["web-1": 100]  // e.g. a slow bastion
    let policy = SchedulePolicy(concurrency: 1, batches: [[0]], ttl: 60, margin: 15)
    let result = run(
      Scheduler(hosts: hosts(1), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.hosts[0].status == .ok)
    let pushes = result.hosts[0].pushes
    #expect(pushes.count == 3)  // at 0, ~45.2 and ~90.4
    let auth = result.hosts[0].authenticated!
    #expect(auth - pushes.last! <= 45)
  }

  @Test func batchesRollOneAfterAnother() {
    let fake = FakeFleet(clock: clock, queue: queue)
    let policy = SchedulePolicy(concurrency: 10, batches: [[0], [1, 2], [3, 4, 5]])
    let result = run(
      Scheduler(hosts: hosts(6), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.hosts.allSatisfy { $0.status == .ok })
    let started = Dictionary(uniqueKeysWithValues: fake.pushes.map { ($0.0, $0.1) })
    #expect(started["web-2"]! >= result.hosts[0].finished!)
    #expect(started["web-4"]! >= max(result.hosts[1].finished!, result.hosts[2].finished!))
    #expect(started["web-2"] == started["web-3"])
  }

  @Test func theTaskGraphRunsInOrderWithParallelBranches() {
    let fake = FakeFleet(clock: clock, queue: queue)
    let tasks = [
      ScheduledTask(name: "a"), ScheduledTask(name: "b", needs: [0]), ScheduledTask(name: "c", needs: [0]),
      ScheduledTask(name: "d", needs: [1, 2]),
    ]
    let policy = SchedulePolicy(concurrency: 1, batches: [[0]])
    let result = run(
      Scheduler(
        hosts: hosts(1, tasks: tasks), policy: policy, pusher: fake, executor: fake, clock: clock,
        queue: queue))
    #expect(result.hosts[0].tasks == [.ok(0), .ok(0), .ok(0), .ok(0)])
    let at = Dictionary(uniqueKeysWithValues: fake.started.map { ($0.0, $0.1) })
    #expect(at["web-1/b"] == at["web-1/c"])  // independent: in parallel
    #expect(at["web-1/d"]! >= at["web-1/b"]! + 5)
  }

  @Test func failuresFollowOnFailureAndDependentsAreSkipped() {
    let fake = FakeFleet(clock: clock, queue: queue)
    let tasks = [
      ScheduledTask(name: "a", onFailure: .continue), ScheduledTask(name: "b", needs: [0]),
      ScheduledTask(name: "c"),
    ]
    fake.exitCodes = ["web-1/a": [3]]
    let policy = SchedulePolicy(concurrency: 1, batches: [[0, 1]])
    let result = run(
      Scheduler(
        hosts: hosts(2, tasks: tasks), policy: policy, pusher: fake, executor: fake, clock: clock,
        queue: queue))
    #expect(result.hosts[0].status == .failed)
    #expect(result.hosts[0].tasks[0] == .failed("exit status 3"))
    #expect(result.hosts[0].tasks[1] == .skipped("'a' did not succeed"))
    #expect(result.hosts[0].tasks[2] == .ok(0))  // continue: unrelated work goes on
    #expect(result.hosts[1].status == .ok)
  }

  @Test func retriesWithDelayThenSucceed() {
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.exitCodes = ["web-1/work": [1, 1, 0]]
    let policy = SchedulePolicy(concurrency: 1, batches: [[0]])
    let tasks = [ScheduledTask(name: "work", retries: 2, retryDelay: 10)]
    let result = run(
      Scheduler(
        hosts: hosts(1, tasks: tasks), policy: policy, pusher: fake, executor: fake, clock: clock,
        queue: queue))
    #expect(result.hosts[0].status == .ok)
    #expect(result.hosts[0].attempts == [3])
    let starts = fake.started.map(\.1)
    #expect(starts[1] - starts[0] == 15 && starts[2] - starts[1] == 15)
  }

  @Test func aHangingTaskTimesOutAndIsKilled() {
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.hang = ["web-1/work"]
    let policy = SchedulePolicy(concurrency: 2, batches: [[0, 1]])
    let tasks = [ScheduledTask(name: "work", timeout: 30)]
    let result = run(
      Scheduler(
        hosts: hosts(2, tasks: tasks), policy: policy, pusher: fake, executor: fake, clock: clock,
        queue: queue))
    #expect(result.hosts[0].status == .timedOut)
    #expect(result.hosts[0].tasks == [.timedOut])
    #expect(fake.killed == ["web-1/work"])
    #expect(result.hosts[1].status == .ok)
  }

  @Test func oneFailedHostOverAThresholdOfZeroIsSaidInTheSingular() {
    let clock = ManualRunClock()
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.refuse = ["web-1"]
    let policy = SchedulePolicy(concurrency: 1, batches: [Array(0..<3)], failureThreshold: 0)
    let scheduler = Scheduler(
      hosts: hosts(3), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue)
    let box = ResultBox()
    queue.sync {
      scheduler.start { box.result = $0 }
      clock.runUntilIdle()
    }
    #expect(box.result?.outcome == .aborted("1 host failed, more than the threshold of 0"))
  }

  @Test func theFailureThresholdAbortsWhenExceededNotWhenEqualled() {
    for (failing, aborted) in [(2, false), (3, true)] {
      let clock = ManualRunClock()
      let fake = FakeFleet(clock: clock, queue: queue)
      fake.refuse = Set((1...failing).map { "web-\($0)" })
      let policy = SchedulePolicy(concurrency: 1, batches: [Array(0..<10)], failureThreshold: 2)
      let scheduler = Scheduler(
        hosts: hosts(10), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue)
      let box = ResultBox()
      queue.sync {
        scheduler.start { box.result = $0 }
        clock.runUntilIdle()
      }
      let result = box.result!
      if aborted {
        #expect(result.outcome == .aborted("3 hosts failed, more than the threshold of 2"))
        #expect(result.hosts[3...].allSatisfy { $0.status == .notStarted })
        #expect(fake.pushes.count == 3)
      } else {
        #expect(result.outcome == .completed)
        #expect(result.hosts.filter { $0.status == .unreachable }.count == 2)
        #expect(result.hosts.filter { $0.status == .ok }.count == 8)
      }
    }
  }

  @Test func abortRunStopsNewHostsButLetsRunningOnesFinishTheirTask() {
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.exitCodes = ["web-1/work": [1]]
    fake.taskDuration = ["web-1/work": 1, "web-2/work": 10]
    let tasks = [ScheduledTask(name: "work", onFailure: .abortRun)]
    let policy = SchedulePolicy(concurrency: 2, batches: [Array(0..<5)])
    let result = run(
      Scheduler(
        hosts: hosts(5, tasks: tasks), policy: policy, pusher: fake, executor: fake, clock: clock,
        queue: queue))
    #expect(result.outcome == .aborted("'work' failed on web-1 and its on_failure is abort-run"))
    #expect(result.hosts[1].status == .ok)  // was running: finished its task
    #expect(result.hosts[2...].allSatisfy { $0.status == .notStarted })
  }

  @Test func interruptOnceFinishesRunningTasksTwiceKillsThem() {
    // Once: nothing new starts, the running task completes.
    let fake = FakeFleet(clock: clock, queue: queue)
    let tasks = [ScheduledTask(name: "one"), ScheduledTask(name: "two", needs: [0])]
    let policy = SchedulePolicy(concurrency: 1, batches: [Array(0..<3)])
    let once = run(
      Scheduler(
        hosts: hosts(3, tasks: tasks), policy: policy, pusher: fake, executor: fake, clock: clock,
        queue: queue),
      interruptAt: [3])
    #expect(once.outcome == .interrupted)
    #expect(once.hosts[0].tasks[0] == .ok(0))
    #expect(once.hosts[0].tasks[1] == .skipped("the run stopped"))
    #expect(once.hosts[1].status == .notStarted)
    #expect(fake.killed.isEmpty)
    #expect(fake.connected.isEmpty, "connections are closed")

    // Twice: the running task is killed.
    let clock2 = ManualRunClock()
    let fake2 = FakeFleet(clock: clock2, queue: queue)
    let scheduler = Scheduler(
      hosts: hosts(3, tasks: tasks), policy: policy, pusher: fake2, executor: fake2, clock: clock2,
      queue: queue)
    let box = ResultBox()
    queue.sync {
      scheduler.start {
        box.result = $0
        box.at = clock2.now()
      }
      clock2.advance(3)
      scheduler.interrupt()
      clock2.advance(1)
      scheduler.interrupt()
      clock2.runUntilIdle()
    }
    #expect(box.result?.outcome == .interrupted)
    #expect(fake2.killed == ["web-1/one"])
    #expect(box.result?.hosts[0].tasks[0] == .failed("killed: the run was interrupted"))
    #expect(box.at == 4, "the run ends at the second interrupt, not when the task would have")
  }

  @Test func theWindowCutoffStopsNewHosts() {
    let fake = FakeFleet(clock: clock, queue: queue)
    let policy = SchedulePolicy(concurrency: 1, batches: [Array(0..<10)], startCutoff: 20)
    let result = run(
      Scheduler(hosts: hosts(10), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.outcome == .aborted("the maintenance window closed; no new hosts start after it"))
    let started = result.hosts.filter { $0.status == .ok }.count
    #expect(started == 4)  // each host takes 6.2 s: starts at 0, 6.2, 12.4, 18.6; 24.8 is past the cutoff
    #expect(fake.pushes.allSatisfy { $0.1 < 20 })
  }

  @Test func theRunTimeoutKillsEverything() {
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.hang = ["web-1/work"]
    let policy = SchedulePolicy(concurrency: 1, batches: [[0, 1]], runTimeout: 50)
    let result = run(
      Scheduler(hosts: hosts(2), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.outcome == .timedOut)
    #expect(result.hosts[0].tasks == [.timedOut])
    #expect(result.hosts[1].status == .notStarted)
    #expect(fake.killed == ["web-1/work"])
  }

  @Test func aDroppedConnectionIsPushedAndReconnectedOnceThenFails() {
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.drops = ["web-1/work": 1, "web-2/work": 2]
    let policy = SchedulePolicy(concurrency: 3, batches: [[0, 1, 2]])
    let result = run(
      Scheduler(hosts: hosts(3), policy: policy, pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.hosts[0].status == .ok)
    #expect(result.hosts[0].reconnects == 1)
    #expect(result.hosts[0].pushes.count == 2)
    #expect(result.hosts[0].attempts == [1], "a drop does not use up retries")
    #expect(fake.connects.filter { $0.0 == "web-1" }.count == 2)
    #expect(result.hosts[1].status == .unreachable)
    #expect(result.hosts[1].message == "the connection to web-2 was lost again after reconnecting once")
    #expect(result.hosts[1].pushes.count == 2)
    #expect(result.hosts[2].status == .ok && result.hosts[2].reconnects == 0)
  }

  // MARK: - Pushing ahead

  func ahead(_ concurrency: Int, _ count: Int, threshold: Int? = nil) -> SchedulePolicy {
    SchedulePolicy(
      concurrency: concurrency, batches: [Array(0..<count)], failureThreshold: threshold, ttl: 60, margin: 15,
      pushAhead: true)
  }

  @Test func hostsNextInLineStartWithTheirKeyAlreadyPushed() {
    let fake = FakeFleet(clock: clock, queue: queue)
    let result = run(
      Scheduler(
        hosts: hosts(40), policy: ahead(2, 40), pusher: fake, executor: fake, clock: clock, queue: queue))
    let aheadEnd = clock.now()
    #expect(result.outcome == .completed)
    #expect(result.hosts.allSatisfy { $0.status == .ok && $0.pushes.count == 1 })
    #expect(fake.maxConcurrentHosts == 2)
    var connectedAtStart = 0
    for (index, host) in result.hosts.enumerated() {
      let started = try! #require(host.started)
      let auth = try! #require(host.authenticated)
      #expect(auth - host.pushes[0] <= 60 - 15)
      // Pushed before its turn, but never more than a few hosts ahead.
      #expect(started - host.pushes[0] < 10)
      let connect = try! #require(fake.connects.first { $0.0 == "web-\(index + 1)" })
      if connect.1 == started && host.pushes[0] < started { connectedAtStart += 1 }
    }
    #expect(connectedAtStart >= 34, "the first hosts, before any host has finished, push at their start")
    // At no time are more hosts pushed and waiting than there are slots.
    for (_, time) in fake.pushes {
      let waiting = result.hosts.filter { $0.pushes[0] <= time && $0.started! > time }.count
      #expect(waiting <= 2)
    }
    // The same run without pushing ahead takes a push (0.2 s) longer per wave.
    let plainClock = ManualRunClock()
    let plainFake = FakeFleet(clock: plainClock, queue: queue)
    let plain = Scheduler(
      hosts: hosts(40), policy: SchedulePolicy(concurrency: 2, batches: [Array(0..<40)]), pusher: plainFake,
      executor: plainFake, clock: plainClock, queue: queue)
    queue.sync {
      plain.start { _ in }
      plainClock.runUntilIdle(limit: 100_000)
    }
    #expect(aheadEnd < plainClock.now() - 3)
  }

  @Test func noKeyIsPushedAheadWhenTheWaitWouldEatIntoItsLife() {
    // Hosts of 100 s at concurrency 2: the next host's turn is ~50 s away, more than half of the
    // key's usable 45 s.
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.defaultDuration = 100
    let result = run(
      Scheduler(
        hosts: hosts(6), policy: ahead(2, 6), pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.hosts.allSatisfy { $0.status == .ok && $0.pushes == [$0.started!] })
  }

  @Test func noKeyIsPushedAheadWhileTheFailureThresholdCouldStopTheRun() {
    let fake = FakeFleet(clock: clock, queue: queue)
    let result = run(
      Scheduler(
        hosts: hosts(8), policy: ahead(2, 8, threshold: 1), pusher: fake, executor: fake, clock: clock,
        queue: queue))
    #expect(result.hosts.allSatisfy { $0.status == .ok && $0.pushes == [$0.started!] })
  }

  @Test func aKeyPushedAheadThatWentStaleIsPushedAgainAtItsTurn() {
    // web-1 takes 6.2 s, so web-3 is pushed at 6.2 s, expected at 12.4 s; web-2 then takes 50 s,
    // and web-3's turn comes at 57.4 s, when its key is older than the usable 45 s.
    let fake = FakeFleet(clock: clock, queue: queue)
    fake.taskDuration = ["web-2/work": 50]
    let result = run(
      Scheduler(
        hosts: hosts(3), policy: ahead(1, 3), pusher: fake, executor: fake, clock: clock, queue: queue))
    #expect(result.hosts.allSatisfy { $0.status == .ok })
    let third = result.hosts[2]
    #expect(third.pushes.count == 2)
    #expect(abs(third.pushes[0] - 6.2) < 0.001)
    #expect(third.pushes[1] == third.started)
    #expect(third.authenticated! - third.pushes[1] <= 45)
  }

  @Test func anInterruptStopsPushingAheadAndLeavesThoseHostsUnstarted() {
    let fake = FakeFleet(clock: clock, queue: queue)
    let result = run(
      Scheduler(
        hosts: hosts(5), policy: ahead(1, 5), pusher: fake, executor: fake, clock: clock, queue: queue),
      interruptAt: [8])
    #expect(result.outcome == .interrupted)
    #expect(result.hosts[0].status == .ok && result.hosts[1].status == .ok)
    #expect(result.hosts[2].status == .notStarted && result.hosts[2].pushes.count == 1)
    #expect(result.hosts[3...].allSatisfy { $0.status == .notStarted })
    #expect(fake.pushes.allSatisfy { $0.1 <= 8 })
  }
}
