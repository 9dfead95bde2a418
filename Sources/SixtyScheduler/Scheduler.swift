import Dispatch
import Foundation

/// One task of one host, as the scheduler sees it.
public struct ScheduledTask: Sendable {
  public enum OnFailure: Sendable { case abortHost, `continue`, abortRun }
  public var name: String
  /// Indices of tasks (in the same host) that must succeed first.
  public var needs: [Int]
  public var onFailure: OnFailure
  public var retries: Int
  public var retryDelay: Double
  public var timeout: Double?

  public init(
    name: String, needs: [Int] = [], onFailure: OnFailure = .abortHost, retries: Int = 0,
    retryDelay: Double = 0,
    timeout: Double? = nil
  ) {
    self.name = name
    self.needs = needs
    self.onFailure = onFailure
    self.retries = retries
    self.retryDelay = retryDelay
    self.timeout = timeout
  }
}

public struct ScheduledHost: Sendable {
  public var name: String
  public var user: String
  public var tasks: [ScheduledTask]
  public init(name: String, user: String, tasks: [ScheduledTask]) {
    self.name = name
    self.user = user
    self.tasks = tasks
  }
}

/// The failed hosts of a run that several runners share (the shards of a sharded run), so that
/// each stops starting hosts once the run as a whole is past its failure threshold.
public protocol SharedFailureCount: Sendable {
  /// Counts a failed host of this runner for every runner; returns at once.
  func hostFailed()
  /// The failed hosts of every runner as last read (a moment old at most), this runner's own
  /// failures always included.
  var failedHosts: Int { get }
  /// Where the count comes from, for messages: "across the run's 4 shards".
  var scope: String { get }
}

/// How the run is paced and when it gives up.
public struct SchedulePolicy: Sendable {
  /// Hosts at once.
  public var concurrency: Int
  /// Rolling batches as host indices; the next starts when the previous is done.
  public var batches: [[Int]]
  /// Abort (start no new hosts) when more hosts than this have failed.
  public var failureThreshold: Int?
  /// How long a pushed key is honoured, and how early to push again before it lapses.
  public var ttl: Double
  public var margin: Double
  /// Independent tasks of one host at once (keep below sshd's MaxSessions).
  public var perHostParallelism: Int
  /// The whole run's limit, if any.
  public var runTimeout: Double?
  /// No host starts after this clock time (a maintenance window's cutoff).
  public var startCutoff: Double?
  /// Push the keys of the hosts next in line while earlier hosts work, so that a host's turn
  /// starts with its key in place (see `Scheduler.pushAhead`).
  public var pushAhead: Bool
  /// Failed hosts counted with other runners (the shards of one run): the failure threshold is
  /// then the whole run's.
  public var sharedFailures: (any SharedFailureCount)?

  public init(
    concurrency: Int, batches: [[Int]], failureThreshold: Int? = nil, ttl: Double = 60, margin: Double = 15,
    perHostParallelism: Int = 4, runTimeout: Double? = nil, startCutoff: Double? = nil,
    pushAhead: Bool = false, sharedFailures: (any SharedFailureCount)? = nil
  ) {
    self.sharedFailures = sharedFailures
    self.concurrency = max(1, concurrency)
    self.batches = batches
    self.failureThreshold = failureThreshold
    self.ttl = ttl
    self.margin = margin
    self.perHostParallelism = max(1, perHostParallelism)
    self.runTimeout = runTimeout
    self.startCutoff = startCutoff
    self.pushAhead = pushAhead
  }
}

public enum PushOutcome: Sendable, Equatable {
  case pushed
  case failed(String)
}

public enum ConnectOutcome: Sendable, Equatable {
  case authenticated
  case failed(String)
}

public enum TaskOutcome: Sendable, Equatable {
  case exited(Int32)
  case failed(String)
  /// The host's connection went away under the task; the scheduler pushes again and reconnects once.
  case connectionLost(String)
}

/// Pushes the run's public key for a host (to AWS or a broker). Completions may come on any thread.
public protocol KeyPusher: Sendable {
  func push(host: ScheduledHost, completion: @escaping @Sendable (PushOutcome) -> Void)
}

/// Runs a host's work over one connection. Completions may come on any thread.
public protocol HostExecutor: Sendable {
  func connect(host: ScheduledHost, completion: @escaping @Sendable (ConnectOutcome) -> Void)
  func run(host: ScheduledHost, task: Int, completion: @escaping @Sendable (TaskOutcome) -> Void)
  /// Kills a running task (timeout or second interrupt).
  func kill(host: ScheduledHost, task: Int)
  func disconnect(host: ScheduledHost)
}

/// What happened to one task.
public enum TaskResult: Sendable, Equatable {
  case pending
  case ok(Int32)
  case failed(String)
  case timedOut
  case skipped(String)
}

/// What happened to one host.
public struct HostResult: Sendable {
  public enum Status: String, Sendable {
    case pending, ok, failed, unreachable, timedOut = "timed out", notStarted = "not started"
  }
  public var status: Status = .pending
  public var tasks: [TaskResult]
  public var attempts: [Int]
  /// Clock times of every push, and of authentication.
  public var pushes: [Double] = []
  public var authenticated: Double?
  /// How many times the connection was re-established after dropping (at most once).
  public var reconnects = 0
  public var started: Double?
  public var finished: Double?
  public var message: String?
}

public struct RunResult: Sendable {
  public enum Outcome: Sendable, Equatable { case completed, aborted(String), interrupted, timedOut }
  public var outcome: Outcome
  public var hosts: [HostResult]
}

/// The run engine: an actor whose executor is its serial queue, so the compiler checks that all
/// state is touched on that queue. Timers are the clock's (DispatchSourceTimer in production) and
/// fire on the queue; callbacks from the pusher and the executor hop onto it (`onQueue`). No
/// thread per host and no polling.
public actor Scheduler {
  let hosts: [ScheduledHost]
  let policy: SchedulePolicy
  let pusher: any KeyPusher
  let executor: any HostExecutor
  let clock: any RunClock
  public let queue: DispatchQueue
  private let queueExecutor: QueueExecutor

  public nonisolated var unownedExecutor: UnownedSerialExecutor { queueExecutor.asUnownedSerialExecutor() }

  // Everything below is isolated to the actor, that is, touched only on `queue`.
  var results: [HostResult]
  var batchIndex = 0
  var waiting: [Int] = []  // hosts of the current batch not yet started
  var active: Set<Int> = []
  var running: [Int: Set<Int>] = [:]  // host -> running task indices
  var taskTimers: [Int: [Int: TimerToken]] = [:]
  var repushTimers: [Int: TimerToken] = [:]
  var failedHosts = 0
  var connecting: Set<Int> = []
  var lostTasks: [Int: Set<Int>] = [:]
  var stopping: RunResult.Outcome?
  var killed = false
  var finished = false
  var completion: (@Sendable (RunResult) -> Void)?
  var runTimer: TimerToken?
  var onEvent: (@Sendable (SchedulerEvent) -> Void)?
  // Pushing ahead: hosts not started yet whose push is under way, and those whose push succeeded
  // (with its time); the mean time a host takes and a push takes, as measured so far.
  var pushingAhead: Set<Int> = []
  var pushedAhead: [Int: Double] = [:]
  var hostSeconds = Mean()
  var pushSeconds = Mean()

  struct Mean {
    var total = 0.0
    var count = 0
    var value: Double? { count == 0 ? nil : total / Double(count) }
    mutating func add(_ sample: Double) {
      total += max(0, sample)
      count += 1
    }
  }

  public init(
    hosts: [ScheduledHost], policy: SchedulePolicy, pusher: any KeyPusher, executor: any HostExecutor,
    clock: any RunClock = DispatchRunClock(), queue: DispatchQueue = DispatchQueue(label: "sixty.scheduler")
  ) {
    self.hosts = hosts
    self.policy = policy
    self.pusher = pusher
    self.executor = executor
    self.clock = clock
    self.queue = queue
    queueExecutor = QueueExecutor(queue: queue)
    results = hosts.map {
      HostResult(
        tasks: Array(repeating: .pending, count: $0.tasks.count),
        attempts: Array(repeating: 0, count: $0.tasks.count))
    }
    queue.setSpecific(key: Scheduler.key, value: ObjectIdentifier(self))
  }

  /// Starts the run; `completion` is called once, on the queue. Call on the queue (tests) or any
  /// thread (it hops).
  public nonisolated func start(
    events: (@Sendable (SchedulerEvent) -> Void)? = nil, completion: @escaping @Sendable (RunResult) -> Void
  ) {
    onQueue { scheduler in
      scheduler.onEvent = events
      scheduler.completion = completion
      if let limit = scheduler.policy.runTimeout {
        scheduler.runTimer = scheduler.clock.after(limit, on: scheduler.queue) {
          scheduler.onQueue { $0.stop(.timedOut, kill: true) }
        }
      }
      scheduler.nextBatch()
    }
  }

  /// First call: start nothing new, let running tasks finish. Second: kill them.
  public nonisolated func interrupt() {
    onQueue { scheduler in
      if let stopping = scheduler.stopping {
        scheduler.stop(stopping, kill: true)
      } else {
        scheduler.stop(.interrupted, kill: false)
      }
    }
  }

  /// Runs `block` isolated to the scheduler: at once when called on its queue (timers, tests
  /// that drive a manual clock there), otherwise queued there.
  nonisolated func onQueue(_ block: @escaping @Sendable (isolated Scheduler) -> Void) {
    if DispatchQueue.getSpecific(key: Scheduler.key) == ObjectIdentifier(self) {
      assumeIsolated { block($0) }
    } else {
      queue.async { self.assumeIsolated { block($0) } }
    }
  }

  static let key = DispatchSpecificKey<ObjectIdentifier>()

  // MARK: - Hosts

  func nextBatch() {
    while batchIndex < policy.batches.count && waiting.isEmpty && active.isEmpty && stopping == nil {
      waiting = policy.batches[batchIndex]
      batchIndex += 1
    }
    fill()
  }

  func fill() {
    while stopping == nil, active.count < policy.concurrency, !waiting.isEmpty {
      if let cutoff = policy.startCutoff, clock.now() >= cutoff {
        stop(.aborted("the maintenance window closed; no new hosts start after it"), kill: false)
        break
      }
      if passedThreshold() { break }
      let host = waiting.removeFirst()
      active.insert(host)
      results[host].started = clock.now()
      if pushingAhead.contains(host) {
        event(.push(host: hosts[host].name))  // its push is under way; `pushed` connects
      } else if let pushedAt = pushedAhead.removeValue(forKey: host), clock.now() < pushedAt + usableFor {
        event(.connect(host: hosts[host].name))
        pushed(host, .pushed, at: pushedAt)
      } else {
        push(host)
      }
    }
    pushAhead()
    if active.isEmpty && (waiting.isEmpty || stopping != nil) {
      if stopping == nil && batchIndex < policy.batches.count {
        nextBatch()
      } else {
        finish()
      }
    }
  }

  /// How long after its push a key may still be used to start connecting: after that the
  /// scheduler pushes again (`armRepush`).
  var usableFor: Double { policy.ttl - policy.margin }

  func push(_ host: Int, ahead: Bool = false) {
    let at = clock.now()
    results[host].pushes.append(at)
    if ahead {
      pushingAhead.insert(host)
      event(.pushAhead(host: hosts[host].name))
    } else {
      event(.push(host: hosts[host].name))
    }
    pusher.push(host: hosts[host]) { outcome in
      self.onQueue { scheduler in
        scheduler.pushSeconds.add(scheduler.clock.now() - at)
        scheduler.pushed(host, outcome, at: at)
      }
    }
  }

  /// Pushes the keys of the hosts next in line, while earlier hosts work, so that a slot that
  /// frees starts its next host with the key in place instead of waiting for a push. Only hosts
  /// whose turn is certain: none once the run is stopping, none while the failure threshold could
  /// still be crossed by the hosts at work, none past a start cutoff, none of a later batch. And
  /// only as far ahead as the pushes' own latency needs (slots free at `concurrency` per mean
  /// host time), never further than half a key's usable time: a host that starts after that
  /// (the hosts ahead of it were slower than the mean) is simply pushed again.
  func pushAhead() {
    guard policy.pushAhead, stopping == nil, !waiting.isEmpty, let perHost = hostSeconds.value,
      let perPush = pushSeconds.value
    else { return }
    if let threshold = policy.failureThreshold, runFailures + active.count > threshold { return }
    let slots = Double(policy.concurrency)
    let needed = Int((slots * perPush / max(perHost, 0.001)).rounded(.up)) + 1
    let count = min(waiting.count, policy.concurrency, needed)
    for position in 0..<count {
      let host = waiting[position]
      let expectedStart = clock.now() + perHost * Double(position + 1) / slots
      guard expectedStart - clock.now() <= usableFor / 2 else { break }
      if let cutoff = policy.startCutoff, expectedStart >= cutoff { break }
      if pushingAhead.contains(host) { continue }
      if let at = pushedAhead[host], clock.now() < at + usableFor / 2 { continue }
      pushedAhead[host] = nil
      push(host, ahead: true)
    }
  }

  func pushed(_ host: Int, _ outcome: PushOutcome, at pushedAt: Double) {
    if pushingAhead.remove(host) != nil, !active.contains(host) {
      // Pushed ahead; the host has not started yet. A failure is not final: the host is pushed
      // again when it starts.
      if outcome == .pushed && stopping == nil { pushedAhead[host] = pushedAt }
      return
    }
    guard results[host].status == .pending, results[host].authenticated == nil else { return }
    switch outcome {
    case .failed(let message):
      // A failed re-push while a connection attempt is under way is not fatal: the earlier key may do.
      if !connecting.contains(host) {
        endHost(host, .unreachable, message: "the key push failed: \(message)")
      }
    case .pushed:
      armRepush(host, pushedAt: pushedAt)
      if !connecting.contains(host) {
        connecting.insert(host)
        executor.connect(host: hosts[host]) { outcome in
          self.onQueue { $0.connected(host, outcome) }
        }
      }
    }
  }

  /// If authentication has not happened by push + ttl − margin, push again.
  func armRepush(_ host: Int, pushedAt: Double) {
    repushTimers[host]?.cancel()
    repushTimers[host] = clock.after(max(0, pushedAt + usableFor - clock.now()), on: queue) {
      self.onQueue { scheduler in
        scheduler.repushTimers[host] = nil
        guard scheduler.results[host].status == .pending, scheduler.results[host].authenticated == nil,
          scheduler.stopping == nil
        else { return }
        scheduler.push(host)
      }
    }
  }

  func connected(_ host: Int, _ outcome: ConnectOutcome) {
    repushTimers[host]?.cancel()
    repushTimers[host] = nil
    connecting.remove(host)
    guard results[host].status == .pending else { return }
    switch outcome {
    case .failed(let message):
      let lost = lostTasks.removeValue(forKey: host) ?? []
      for task in lost {
        results[host].tasks[task] = .failed("the connection was lost and could not be re-established")
      }
      endHost(
        host, .unreachable,
        message: results[host].reconnects > 0 ? "reconnecting failed: \(message)" : message)
    case .authenticated:
      results[host].authenticated = clock.now()
      event(.authenticated(host: hosts[host].name))
      // Tasks cut off by a dropped connection run again; the drop does not use up their retries.
      for task in lostTasks.removeValue(forKey: host) ?? [] {
        results[host].attempts[task] -= 1
        results[host].tasks[task] = .pending
      }
      startTasks(host)
    }
  }

  /// The connection dropped under `task`: push again and reconnect, once per host.
  func connectionLost(_ host: Int, _ task: Int, _ message: String) {
    taskTimers[host]?[task]?.cancel()
    taskTimers[host]?[task] = nil
    running[host]?.remove(task)
    lostTasks[host, default: []].insert(task)
    // Neither authenticated nor connecting: a reconnect is already under way.
    guard results[host].authenticated != nil || connecting.contains(host) else { return }
    if results[host].reconnects >= 1 || stopping != nil {
      for lost in lostTasks.removeValue(forKey: host) ?? [] {
        results[host].tasks[lost] = .failed("the connection was lost again: \(message)")
      }
      if running[host, default: []].isEmpty {
        endHost(
          host, .unreachable,
          message: "the connection to \(hosts[host].name) was lost again after reconnecting once")
      }
      return
    }
    guard !connecting.contains(host) else { return }
    results[host].reconnects += 1
    results[host].authenticated = nil
    event(.reconnect(host: hosts[host].name))
    executor.disconnect(host: hosts[host])
    push(host)
  }

  // MARK: - Tasks

  func startTasks(_ host: Int) {
    guard results[host].authenticated != nil else { return }  // reconnecting
    let tasks = hosts[host].tasks
    var running = self.running[host, default: []]
    for (index, task) in tasks.enumerated()
    where results[host].tasks[index] == .pending && !running.contains(index) {
      if stopping != nil { break }
      guard running.count < policy.perHostParallelism else { break }
      var ready = true
      for need in task.needs {
        switch results[host].tasks[need] {
        case .ok: continue
        case .pending: ready = false
        default:
          results[host].tasks[index] = .skipped("'\(tasks[need].name)' did not succeed")
          ready = false
        }
      }
      guard ready, results[host].tasks[index] == .pending else { continue }
      running.insert(index)
      self.running[host] = running
      launch(host, index)
    }
    self.running[host] = running
    settle(host)
  }

  func launch(_ host: Int, _ index: Int) {
    results[host].attempts[index] += 1
    let attempt = results[host].attempts[index]
    event(.start(host: hosts[host].name, task: hosts[host].tasks[index].name))
    if let timeout = hosts[host].tasks[index].timeout {
      taskTimers[host, default: [:]][index] = clock.after(timeout, on: queue) {
        self.onQueue { scheduler in
          guard scheduler.results[host].attempts[index] == attempt,
            scheduler.running[host]?.contains(index) == true
          else { return }
          scheduler.executor.kill(host: scheduler.hosts[host], task: index)
          scheduler.taskEnded(host, index, .timedOut)
        }
      }
    }
    executor.run(host: hosts[host], task: index) { outcome in
      self.onQueue { scheduler in
        guard scheduler.results[host].attempts[index] == attempt,
          scheduler.running[host]?.contains(index) == true
        else { return }
        switch outcome {
        case .exited(let code) where code == 0: scheduler.taskEnded(host, index, .ok(code))
        case .exited(let code): scheduler.taskEnded(host, index, .failed("exit status \(code)"))
        case .failed(let message): scheduler.taskEnded(host, index, .failed(message))
        case .connectionLost(let message): scheduler.connectionLost(host, index, message)
        }
      }
    }
  }

  func taskEnded(_ host: Int, _ index: Int, _ result: TaskResult) {
    taskTimers[host]?[index]?.cancel()
    taskTimers[host]?[index] = nil
    running[host]?.remove(index)
    let task = hosts[host].tasks[index]
    if case .ok = result {
      results[host].tasks[index] = result
    } else if results[host].attempts[index] <= task.retries && stopping == nil {
      event(.retry(host: hosts[host].name, task: task.name))
      running[host, default: []].insert(index)
      _ = clock.after(task.retryDelay, on: queue) {
        self.onQueue { scheduler in
          guard scheduler.results[host].status == .pending, scheduler.stopping == nil || !scheduler.killed
          else {
            scheduler.running[host]?.remove(index)
            scheduler.settle(host)
            return
          }
          scheduler.launch(host, index)
        }
      }
      return
    } else {
      results[host].tasks[index] = result
      switch task.onFailure {
      case .continue: break
      case .abortHost: skipRemaining(host, because: "'\(task.name)' failed")
      case .abortRun:
        skipRemaining(host, because: "'\(task.name)' failed")
        stop(
          .aborted("'\(task.name)' failed on \(hosts[host].name) and its on_failure is abort-run"),
          kill: false)
      }
    }
    startTasks(host)
  }

  func skipRemaining(_ host: Int, because reason: String) {
    for index in results[host].tasks.indices
    where results[host].tasks[index] == .pending && running[host]?.contains(index) != true {
      results[host].tasks[index] = .skipped(reason)
    }
  }

  /// Ends the host once nothing runs and nothing more can start.
  func settle(_ host: Int) {
    guard results[host].status == .pending, running[host, default: []].isEmpty else { return }
    if stopping != nil {
      skipRemaining(host, because: "the run stopped")
    }
    guard !results[host].tasks.contains(.pending) else { return }
    let tasks = results[host].tasks
    let status: HostResult.Status =
      tasks.contains(.timedOut)
      ? .timedOut
      : tasks.contains(where: { if case .failed = $0 { true } else { false } })
        ? .failed
        : stopping != nil
          && tasks.contains(where: { if case .skipped("the run stopped") = $0 { true } else { false } })
          ? .failed
          : .ok
    endHost(host, status, message: nil)
  }

  func endHost(_ host: Int, _ status: HostResult.Status, message: String?) {
    guard results[host].status == .pending else { return }
    repushTimers[host]?.cancel()
    repushTimers[host] = nil
    results[host].status = status
    results[host].message = message
    results[host].finished = clock.now()
    for index in results[host].tasks.indices where results[host].tasks[index] == .pending {
      results[host].tasks[index] = .skipped(message ?? "the host did not finish")
    }
    if status != .ok { failedHosts += 1 }
    // Hosts a stopping run never started are not failures the other runners should count.
    if status != .ok && status != .notStarted { policy.sharedFailures?.hostFailed() }
    if let started = results[host].started { hostSeconds.add(clock.now() - started) }
    executor.disconnect(host: hosts[host])
    active.remove(host)
    event(.end(host: hosts[host].name, status: status))
    _ = passedThreshold()
    fill()
  }

  /// The failed hosts that count towards the threshold: this runner's, or every runner's when
  /// they are shared.
  var runFailures: Int { max(failedHosts, policy.sharedFailures?.failedHosts ?? 0) }

  /// Stops the run (starting no new host) when more hosts than the threshold have failed; true
  /// when it is stopping for any reason.
  func passedThreshold() -> Bool {
    guard stopping == nil else { return true }
    guard let threshold = policy.failureThreshold else { return false }
    let failed = runFailures
    guard failed > threshold else { return false }
    let scope = policy.sharedFailures.map { " " + $0.scope } ?? ""
    stop(
      .aborted(
        "\(failed) host\(failed == 1 ? "" : "s") failed\(scope), more than the threshold of \(threshold)"),
      kill: false)
    return true
  }

  func stop(_ outcome: RunResult.Outcome, kill: Bool) {
    if stopping == nil { stopping = outcome }
    waiting.removeAll()
    pushedAhead.removeAll()
    if kill && !killed {
      killed = true
      for (host, tasks) in running {
        for task in tasks {
          executor.kill(host: hosts[host], task: task)
          taskTimers[host]?[task]?.cancel()
          results[host].tasks[task] =
            outcome == .timedOut ? .timedOut : .failed("killed: the run was interrupted")
        }
        running[host] = []
      }
    }
    // Hosts that were pushed but have not authenticated yet stop here.
    for host in active where results[host].authenticated == nil {
      endHost(host, .notStarted, message: "the run stopped before this host authenticated")
    }
    for host in Array(active) { settle(host) }
    fill()
  }

  func finish() {
    guard !finished else { return }
    finished = true
    runTimer?.cancel()
    for index in results.indices where results[index].status == .pending {
      results[index].status = .notStarted
      for task in results[index].tasks.indices where results[index].tasks[task] == .pending {
        results[index].tasks[task] = .skipped("the host did not start")
      }
    }
    completion?(RunResult(outcome: stopping ?? .completed, hosts: results))
  }

  func event(_ event: SchedulerEvent) { onEvent?(event) }
}

/// A serial executor that runs jobs on a serial DispatchQueue (after GRDB's DispatchQueueActor):
/// the scheduler's actor runs on its queue, and code already on the queue may assume isolation.
final class QueueExecutor: SerialExecutor {
  let queue: DispatchQueue

  init(queue: DispatchQueue) { self.queue = queue }

  func enqueue(_ job: UnownedJob) {
    let executor = asUnownedSerialExecutor()
    queue.async { job.runSynchronously(on: executor) }
  }

  func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

  func checkIsolated() { dispatchPrecondition(condition: .onQueue(queue)) }
}

/// What the scheduler reports as a play goes, in the order it happens on its queue. Its
/// `description` is the line form (`end web-1 ok`) that `sixty run` prints.
public enum SchedulerEvent: Sendable, Equatable, CustomStringConvertible {
  /// The host's key push started (its turn came).
  case push(host: String)
  /// The host's key push started ahead of its turn.
  case pushAhead(host: String)
  /// The key was pushed; the connection is being made.
  case connect(host: String)
  /// The connection is up and authenticated.
  case authenticated(host: String)
  /// The connection was lost; a new key and connection follow.
  case reconnect(host: String)
  /// A task started on the host.
  case start(host: String, task: String)
  /// A task failed and runs again after its retry delay.
  case retry(host: String, task: String)
  /// The host finished.
  case end(host: String, status: HostResult.Status)

  public var host: String {
    switch self {
    case .push(let host), .pushAhead(let host), .connect(let host), .authenticated(let host),
      .reconnect(let host), .start(let host, _), .retry(let host, _), .end(let host, _):
      host
    }
  }

  public var description: String {
    switch self {
    case .push(let host): "push \(host)"
    case .pushAhead(let host): "push-ahead \(host)"
    case .connect(let host): "connect \(host)"
    case .authenticated(let host): "authenticated \(host)"
    case .reconnect(let host): "reconnect \(host)"
    case .start(let host, let task): "start \(host) \(task)"
    case .retry(let host, let task): "retry \(host) \(task)"
    case .end(let host, let status): "end \(host) \(status.rawValue)"
    }
  }
}
