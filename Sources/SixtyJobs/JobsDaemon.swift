import Foundation
import Logging
import ServiceLifecycle
import SixtyCalendar
import SixtyCore
import SixtyHistory
import UnixSignals

/// `sixty jobs daemon`: fires each job at the times its schedule gives (computed from the schedule,
/// never by sleeping fixed intervals), one run per job at a time, each run a `sixty run` child
/// process recorded in the history.
///
/// Events arrive on one stream and are handled one at a time by `run()`: timer wake-ups, SIGHUP
/// reloads, run exits and shutdown. `JobsMachine` decides; this service reads the clock, the
/// history and the jobs file, starts runs, and logs.
public final class JobsDaemon: Service, @unchecked Sendable {
  // Safe: `machine` and `notifications` are used only by `run()` and the methods it calls, one
  // event at a time; every other stored property is immutable and Sendable.
  enum Event: Sendable {
    case wake
    case reload
    case exited(job: String, pid: pid_t, status: Int32)
    case shutdown
    case cancel
  }

  let jobsPath: String
  let history: History
  let logDirectory: String
  let launcher: any RunLauncher
  let notifier: Notifier
  let clock: any JobsClock
  let logger: Logger
  /// How long the timer sleeps at most before re-reading the clock (wall-clock jumps, suspend).
  let maxSleep: TimeInterval
  let trapsHangup: Bool
  let loadJobs: @Sendable (String) -> ([Job]?, [Diagnostic])
  let events: AsyncStream<Event>
  let continuation: AsyncStream<Event>.Continuation

  var machine: JobsMachine
  var notifications: [Task<Void, Never>] = []
  /// With a shared history: who this daemon is to the others, and the fence token of each fire
  /// it runs (by job), whose lease `renewLeases` extends. `tokensLock` protects `tokens`.
  let holder = "\(ProcessInfo.processInfo.hostName)/pid \(getpid())"
  let tokensLock = NSLock()
  var tokens: [String: Int64] = [:]
  /// How long a fire's lease lasts without renewal (a dead daemon's fire is free after it).
  static let lease: Double = 30

  /// - Parameters:
  ///   - jobs: the jobs file's jobs, loaded by the caller (which reports its problems).
  ///   - trapsHangup: whether SIGHUP reloads the jobs file (else only `reload()` does).
  ///   - loadJobs: reads the jobs file again on a reload (by default with each job's playbook,
  ///     inventory and policy checked, `JobsCheck`).
  public init(
    jobsPath: String, jobs: [Job], history: History, logDirectory: String, launcher: any RunLauncher,
    notifier: Notifier, clock: any JobsClock = SystemJobsClock(), logger: Logger, maxSleep: TimeInterval = 30,
    trapsHangup: Bool = true,
    loadJobs: @escaping @Sendable (String) -> ([Job]?, [Diagnostic]) = { JobsCheck.load(path: $0) }
  ) {
    self.jobsPath = jobsPath
    self.history = history
    self.logDirectory = logDirectory
    self.launcher = launcher
    self.notifier = notifier
    self.clock = clock
    self.logger = logger
    self.maxSleep = maxSleep
    self.trapsHangup = trapsHangup
    self.loadJobs = loadJobs
    machine = JobsMachine(jobs: jobs)
    (events, continuation) = AsyncStream.makeStream(of: Event.self)
  }

  /// Reads the jobs file again, as SIGHUP does.
  public func reload() { continuation.yield(.reload) }

  public func run() async throws {
    let continuation = self.continuation
    var hangups: Task<Void, Never>?
    if trapsHangup {
      let signals = await UnixSignalsSequence(trapping: .sighup)
      hangups = Task {
        for await _ in signals { continuation.yield(.reload) }
      }
    }
    defer { hangups?.cancel() }
    logger.info(
      "daemon started",
      metadata: [
        "jobs": .string(jobsPath), "count": .stringConvertible(machine.jobs.count),
        "history": .string(history.path), "pid": .stringConvertible(getpid()),
      ])
    var lastFires: [String: Date] = [:]
    for job in machine.jobs {
      do {
        lastFires[job.name] = try history.lastFire(job: job.name)
      } catch {
        logger.error(
          "cannot read the job state",
          metadata: ["job": .string(job.name), "error": .string(error.description)])
      }
    }
    handle(.start(lastFires: lastFires))
    let leases = history.isShared ? Task { await renewLeases() } : nil
    defer { leases?.cancel() }
    await withTaskCancellationHandler {
      await withGracefulShutdownHandler {
        await loop()
      } onGracefulShutdown: {
        continuation.yield(.shutdown)
      }
    } onCancel: {
      continuation.yield(.cancel)
    }
    for task in notifications { await task.value }
    logger.info("daemon stopped")
  }

  func loop() async {
    var iterator = events.makeAsyncIterator()
    while true {
      if machine.isFinished { return }
      let sleep = machine.sleep(now: clock.now(), maxSleep: maxSleep)
      let (continuation, clock) = (self.continuation, self.clock)
      let timer = Task {
        try? await clock.sleep(for: sleep)
        if !Task.isCancelled { continuation.yield(.wake) }
      }
      guard let event = await iterator.next() else { return }
      timer.cancel()
      switch event {
      case .wake: handle(.wake)
      case .reload: reloadJobs()
      case .exited(let job, let pid, let status): handle(.exited(job: job, pid: pid, status: status))
      case .shutdown: handle(.shutdown(force: false))
      case .cancel: handle(.shutdown(force: true))
      }
    }
  }

  /// Hands `event` to the machine, at the clock's time, and carries out what it says.
  func handle(_ event: JobsEvent) {
    var pending = machine.handle(event, now: clock.now())[...]
    while let action = pending.popFirst() {
      switch action {
      case .log(let level, let message, let metadata):
        logger.log(level: level, "\(message)", metadata: metadata)
      case .recordLastFire(let job, let at): record(lastFire: at, of: job)
      case .launch(let launch):
        let reported = start(launch)
        pending = machine.handle(reported, now: clock.now()) + pending
      case .recordSkipped(let job, let scheduled, let trigger, let message):
        recordSkipped(job, scheduled: scheduled, trigger: trigger, message: message)
      case .finished(let entry, let status): finished(entry, status: status)
      case .signal(let pid, let signal): kill(pid, signal)
      }
    }
  }

  /// With a shared history, every `lease / 3` seconds: extends the leases of this daemon's fires,
  /// and marks runs whose runner stopped (a dead daemon's run among them) interrupted.
  func renewLeases() async {
    let interval = Duration.milliseconds(Int(JobsDaemon.lease * 1000 / 3))
    while !Task.isCancelled {
      try? await clock.sleep(for: Double(interval.components.seconds))
      if Task.isCancelled { return }
      let held = tokensLock.withLock { tokens }
      do {
        let lost = try history.renewFires(tokens: Array(held.values), lease: JobsDaemon.lease)
        for (job, token) in held where lost.contains(token) {
          logger.error(
            "the lease of a running fire was lost (the database was unreachable for longer than the lease)",
            metadata: ["job": .string(job)])
        }
        let swept = try history.sweepInterrupted()
        if !swept.isEmpty {
          logger.notice(
            "runs marked interrupted (their runner stopped)",
            metadata: ["runs": .string(swept.map(String.init).joined(separator: ","))])
        }
      } catch {
        logger.error("cannot renew fire leases", metadata: ["error": .string(error.description)])
      }
    }
  }

  /// Claims a fire in a shared history; nil when another daemon has it (or it cannot be claimed),
  /// the token otherwise. A fire that overlaps another daemon's running one is recorded skipped here.
  func claim(_ job: Job, scheduled: Date, trigger: RunTrigger, metadata: Logger.Metadata) -> Int64?? {
    guard history.isShared else { return .some(nil) }
    do {
      switch try history.claimFire(
        job: job.name, scheduled: scheduled, holder: holder, lease: JobsDaemon.lease)
      {
      case .claimed(let token):
        return .some(token)
      case .taken(let other):
        logger.info(
          "fire taken by another daemon", metadata: metadata.merging(["daemon": .string(other)]) { $1 })
        return nil
      case .overlapping(let other, let previous, _):
        logger.warning(
          "fire skipped: the previous run is still going on another daemon",
          metadata: metadata.merging(["daemon": .string(other)]) { $1 })
        recordSkippedClaimed(
          job, scheduled: scheduled, trigger: trigger,
          message:
            "the run started for \(JobSchedules.iso(previous)) on \(other) was still going (several daemons skip overlapping fires)"
        )
        return nil
      }
    } catch {
      logger.error(
        "cannot claim the fire", metadata: metadata.merging(["error": .string(error.description)]) { $1 })
      return nil
    }
  }

  func endFire(job: String, state: String) {
    guard let token = tokensLock.withLock({ tokens.removeValue(forKey: job) }) else { return }
    do {
      try history.endFire(token: token, state: state)
    } catch {
      logger.error(
        "cannot record the fire's end", metadata: ["job": .string(job), "error": .string(error.description)])
    }
  }

  func reloadJobs() {
    let (loaded, diagnostics) = loadJobs(jobsPath)
    guard let loaded else {
      for diagnostic in diagnostics where diagnostic.severity == .error {
        logger.error("jobs file error", metadata: ["error": .string(diagnostic.description)])
      }
      logger.error(
        "reload failed; keeping the previous schedule",
        metadata: [
          "jobs": .string(jobsPath),
          "errors": .stringConvertible(diagnostics.filter { $0.severity == .error }.count),
        ])
      return
    }
    for diagnostic in diagnostics {
      logger.warning("jobs file warning", metadata: ["warning": .string(diagnostic.description)])
    }
    handle(.reload(loaded))
    logger.info("reloaded", metadata: ["jobs": .string(jobsPath), "count": .stringConvertible(loaded.count)])
  }

  func record(lastFire: Date, of job: String) {
    do {
      try history.setLastFire(job: job, at: lastFire)
    } catch {
      logger.error(
        "cannot record the job state", metadata: ["job": .string(job), "error": .string(error.description)])
    }
  }

  func newRun(_ job: Job, scheduled: Date, trigger: RunTrigger) -> NewRun {
    NewRun(
      playbook: job.playbook, playbookSHA256: FileDigest.sha256(ofFile: job.playbook),
      inventory: job.inventory,
      policy: job.policy, limit: job.limit, job: job.name, trigger: trigger, scheduledFor: scheduled)
  }

  func recordSkipped(_ job: Job, scheduled: Date, trigger: RunTrigger, message: String) {
    if history.isShared {
      // Recorded by the daemon that claims the fire, once.
      let metadata: Logger.Metadata = [
        "job": .string(job.name), "scheduled": .string(JobSchedules.iso(scheduled)),
      ]
      guard let claimed = claim(job, scheduled: scheduled, trigger: trigger, metadata: metadata) else {
        return
      }
      if let token = claimed { try? history.endFire(token: token, state: "skipped") }
    }
    recordSkippedClaimed(job, scheduled: scheduled, trigger: trigger, message: message)
  }

  func recordSkippedClaimed(_ job: Job, scheduled: Date, trigger: RunTrigger, message: String) {
    do {
      try history.recordUnstarted(
        newRun(job, scheduled: scheduled, trigger: trigger), status: .skipped, exitCode: nil, message: message
      )
    } catch {
      logger.error(
        "cannot record the skipped fire",
        metadata: ["job": .string(job.name), "error": .string(error.description)])
    }
  }

  /// The run log of a fire: `<log dir>/<job>/<scheduled>-<trigger>.log`.
  func logPath(_ launch: JobsLaunch) -> String {
    let stamp = JobSchedules.iso(launch.scheduled).replacingOccurrences(of: ":", with: "")
    return logDirectory + "/" + launch.job.name + "/" + stamp + "-" + launch.trigger.rawValue + ".log"
  }

  /// Starts a run; what happened, for the machine.
  func start(_ launch: JobsLaunch) -> JobsEvent {
    let job = launch.job
    let log = logPath(launch)
    let metadata: Logger.Metadata = [
      "job": .string(job.name), "scheduled": .string(JobSchedules.iso(launch.scheduled)),
      "trigger": .string(launch.trigger.rawValue),
    ]
    guard let claimed = claim(job, scheduled: launch.scheduled, trigger: launch.trigger, metadata: metadata)
    else {
      return .launchFailed(job: job.name)
    }
    if let token = claimed { tokensLock.withLock { tokens[job.name] = token } }
    let request = JobRunRequest(
      job: job.name, playbook: job.playbook, inventory: job.inventory, policy: job.policy, limit: job.limit,
      trigger: launch.trigger, scheduled: launch.scheduled, notAfter: launch.notAfter,
      historyPath: history.reopenPath,
      logPath: log)
    do {
      let continuation = self.continuation
      let name = job.name
      let pid = try launcher.launch(request) { pid, status in
        continuation.yield(.exited(job: name, pid: pid, status: status))
      }
      logger.info(
        "run started",
        metadata: metadata.merging(["pid": .stringConvertible(pid), "log": .string(log)]) { $1 })
      return .launched(job: job.name, pid: pid, log: log)
    } catch {
      logger.error("run not started", metadata: metadata.merging(["error": .string("\(error)")]) { $1 })
      endFire(job: job.name, state: "not started")
      do {
        try history.recordUnstarted(
          newRun(job, scheduled: launch.scheduled, trigger: launch.trigger), status: .error, exitCode: nil,
          message: "the daemon could not start the run: \(error)")
      } catch {
        logger.error("cannot record the failed start", metadata: ["error": .string(error.description)])
      }
      return .launchFailed(job: job.name)
    }
  }

  func finished(_ entry: JobsMachine.Running, status: Int32) {
    let name = entry.job.name
    endFire(job: name, state: "done")
    let pid = entry.pid ?? 0
    var metadata: Logger.Metadata = [
      "job": .string(name), "pid": .stringConvertible(pid), "exit": .stringConvertible(status),
      "log": .string(entry.log),
    ]
    var record: RunRecord?
    do {
      record = try history.latestRun(job: name, pid: pid, since: entry.started)
      if record == nil {
        // The run ended before it could record itself (bad playbook, bad inventory, …).
        let tail = Self.tail(ofFile: entry.log)
        let id = try history.recordUnstarted(
          newRun(entry.job, scheduled: entry.scheduled, trigger: entry.trigger),
          status: status == 3 ? .refused : .error, exitCode: status,
          message: tail.isEmpty ? "sixty run exited \(status) before starting" : tail)
        record = try history.run(id: id)
      }
    } catch {
      logger.error(
        "cannot read the run's record",
        metadata: metadata.merging(["error": .string(error.description)]) { $1 })
    }
    if let record {
      metadata["run"] = .stringConvertible(record.id)
      metadata["status"] = .string(record.status.rawValue)
      metadata["hosts_ok"] = .stringConvertible(record.hostsOK)
      metadata["hosts_failed"] = .stringConvertible(record.hostsFailed)
    }
    if status == 0 {
      logger.info("run finished", metadata: metadata)
    } else {
      logger.warning("run finished", metadata: metadata)
    }
    if let record, !entry.job.notifications.isEmpty {
      let notifier = self.notifier
      let job = entry.job
      notifications.append(Task { await notifier.notify(job: job, run: record) })
    }
  }

  /// The last non-empty lines of a file, for a run that never got to record itself.
  static func tail(ofFile path: String) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
    let lines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    return lines.suffix(3).joined(separator: " / ")
  }
}
