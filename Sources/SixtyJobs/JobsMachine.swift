import Foundation
import Logging
import SixtyCalendar
import SixtyHistory

/// What happens to the jobs daemon, one event at a time.
public enum JobsEvent: Sendable {
  /// The daemon starts; `lastFires` holds each job's last handled fire from the history (none for
  /// a job never handled, or whose state could not be read).
  case start(lastFires: [String: Date])
  /// The timer went off (or the clock should be looked at again).
  case wake
  /// The jobs file was read again (SIGHUP) without errors.
  case reload([Job])
  /// A `.launch` action started the run as process `pid`, writing to `log`.
  case launched(job: String, pid: pid_t, log: String)
  /// A `.launch` action could not start the run.
  case launchFailed(job: String)
  /// A run's process ended with this exit status (or 128+signal).
  case exited(job: String, pid: pid_t, status: Int32)
  /// Stop: gracefully (SIGTERM, SIGINT), or `force`d (cancellation) killing running tasks.
  case shutdown(force: Bool)
}

/// One run the daemon starts: what `sixty run` is given.
public struct JobsLaunch: Sendable {
  public var job: Job
  public var scheduled: Date
  public var trigger: RunTrigger
  /// The time after which the run's hosts may not start (the job's window), if any.
  public var notAfter: Date?

  public init(job: Job, scheduled: Date, trigger: RunTrigger, notAfter: Date?) {
    self.job = job
    self.scheduled = scheduled
    self.trigger = trigger
    self.notAfter = notAfter
  }
}

/// What the daemon must do after an event, in order.
public enum JobsAction: Sendable {
  case log(Logger.Level, String, Logger.Metadata)
  /// Remember the job's last handled fire (the history's job state).
  case recordLastFire(job: String, at: Date)
  /// Start a run, then report `.launched` or `.launchFailed`.
  case launch(JobsLaunch)
  /// Record a fire that did not run.
  case recordSkipped(job: Job, scheduled: Date, trigger: RunTrigger, message: String)
  /// A run ended: read its record (or record why it never started), log it and notify.
  case finished(JobsMachine.Running, status: Int32)
  /// Send a signal to a run's process.
  case signal(pid: pid_t, Int32)
}

/// The jobs daemon's decisions, without a clock or any I/O: which fires are due, catch-up after
/// downtime, coalescing of missed fires, overlapping runs (skip or queue), closed windows,
/// reloads, run exits and graceful shutdown. The daemon feeds it events with the time they
/// happened at and carries out the actions it returns.
public struct JobsMachine: Sendable {
  /// A run in progress; `pid` is nil until its launch is reported.
  public struct Running: Sendable {
    public var job: Job
    public var pid: pid_t?
    public var scheduled: Date
    public var trigger: RunTrigger
    public var started: Date
    public var log: String = ""
    public var stopping = false
  }

  public private(set) var jobs: [Job]
  public private(set) var nextFire: [String: Date] = [:]
  public private(set) var running: [String: Running] = [:]
  public private(set) var queued: [String: Date] = [:]
  public private(set) var shuttingDown = false

  public init(jobs: [Job]) { self.jobs = jobs }

  /// Whether the daemon is done: stopping, and no run is left.
  public var isFinished: Bool { shuttingDown && running.isEmpty }

  /// How long to sleep before the next `.wake`, at most `maxSleep` (the clock is looked at again
  /// then, for wall-clock jumps and suspends).
  public func sleep(now: Date, maxSleep: TimeInterval) -> TimeInterval {
    if shuttingDown { return maxSleep }
    let due = jobs.filter(\.enabled).compactMap { nextFire[$0.name] }.min()
    return max(0, min(maxSleep, (due ?? .distantFuture).timeIntervalSince(now)))
  }

  public mutating func handle(_ event: JobsEvent, now: Date) -> [JobsAction] {
    var actions: [JobsAction] = []
    switch event {
    case .start(let lastFires):
      for job in jobs { actions.append(describe(job, "job loaded", now: now)) }
      for job in jobs { schedule(job, last: lastFires[job.name], now: now, &actions) }
    case .wake:
      if !shuttingDown { fireDue(now: now, &actions) }
    case .reload(let loaded): reload(loaded, now: now, &actions)
    case .launched(let name, let pid, let log):
      running[name]?.pid = pid
      running[name]?.log = log
    case .launchFailed(let name):
      running[name] = nil
    case .exited(let name, let pid, let status): finished(name, pid: pid, status: status, now: now, &actions)
    case .shutdown(let force): beginShutdown(force: force, &actions)
    }
    return actions
  }

  // MARK: - Schedules

  func describe(_ job: Job, _ message: String, now: Date) -> JobsAction {
    var metadata: Logger.Metadata = [
      "job": .string(job.name), "schedule": .string(job.schedule.description),
      "timezone": .string(JobSchedules.zoneName(job.timeZone)), "enabled": .stringConvertible(job.enabled),
    ]
    if let next = nextFire[job.name] ?? job.calendar.next(after: now) {
      metadata["next"] = .string(JobSchedules.iso(next))
    }
    return .log(.info, message, metadata)
  }

  /// The latest fire of `job` in (after, now], and how many fires that range held.
  public static func latestFire(of job: Job, after: Date, now: Date) -> (Date, Int)? {
    var latest: Date?
    var count = 0
    var at = after
    while let next = job.calendar.next(after: at), next <= now {
      latest = next
      count += 1
      at = next
      if count >= 1_000_000 { break }
    }
    return latest.map { ($0, count) }
  }

  /// Sets the job's next fire from its last handled fire, applying catch-up: fires missed while
  /// the daemon was down run once if the job says `catch_up: once`, else are logged and dropped.
  mutating func schedule(_ job: Job, last: Date?, now: Date, _ actions: inout [JobsAction]) {
    guard let last, job.enabled else {
      // A new (or disabled) job starts from now: nothing before it counts as missed.
      actions.append(.recordLastFire(job: job.name, at: now))
      nextFire[job.name] = job.calendar.next(after: now)
      return
    }
    var from = last
    if let (missed, count) = Self.latestFire(of: job, after: last, now: now) {
      if job.catchUp == .once {
        actions.append(
          .log(
            .notice, "catching up a missed fire",
            [
              "job": .string(job.name), "missed": .stringConvertible(count),
              "scheduled": .string(JobSchedules.iso(missed)),
            ]))
        fire(job, scheduled: missed, trigger: .catchUp, now: now, &actions)
      } else {
        actions.append(
          .log(
            .notice, "missed fires dropped (catch_up: none)",
            [
              "job": .string(job.name), "missed": .stringConvertible(count),
              "last": .string(JobSchedules.iso(missed)),
            ]))
      }
      actions.append(.recordLastFire(job: job.name, at: missed))
      from = missed
    }
    // Nothing in (from, now] is left: `from` is the latest fire up to now.
    nextFire[job.name] = job.calendar.next(after: from)
  }

  /// Fires every job whose time has come (several fires passed at once, e.g. after a suspend,
  /// count as one: the latest).
  mutating func fireDue(now: Date, _ actions: inout [JobsAction]) {
    for job in jobs where job.enabled {
      guard let due = nextFire[job.name], due <= now else { continue }
      var scheduled = due
      var skipped = 0
      while let next = job.calendar.next(after: scheduled), next <= now {
        scheduled = next
        skipped += 1
      }
      if skipped > 0 {
        actions.append(
          .log(
            .warning, "fires coalesced (the daemon was suspended or the clock jumped)",
            ["job": .string(job.name), "coalesced": .stringConvertible(skipped)]))
      }
      fire(job, scheduled: scheduled, trigger: .schedule, now: now, &actions)
      actions.append(.recordLastFire(job: job.name, at: scheduled))
      nextFire[job.name] = job.calendar.next(after: scheduled)
    }
  }

  /// The time after which the run's hosts may not start (the job's window), if any.
  public static func notAfter(_ job: Job, scheduled: Date) -> Date? {
    guard let duration = job.windowDuration else { return nil }
    return scheduled.addingTimeInterval(Double(duration.milliseconds - job.windowCutoff.milliseconds) / 1000)
  }

  mutating func fire(
    _ job: Job, scheduled: Date, trigger: RunTrigger, now: Date, _ actions: inout [JobsAction]
  ) {
    let metadata: Logger.Metadata = [
      "job": .string(job.name), "scheduled": .string(JobSchedules.iso(scheduled)),
      "trigger": .string(trigger.rawValue),
    ]
    if let limit = Self.notAfter(job, scheduled: scheduled), limit <= now {
      let message =
        "the job's window for the fire at \(JobSchedules.iso(scheduled)) closed at \(JobSchedules.iso(limit))"
      actions.append(.log(.warning, "fire skipped: window closed", metadata))
      actions.append(.recordSkipped(job: job, scheduled: scheduled, trigger: trigger, message: message))
      return
    }
    if let current = running[job.name] {
      let pid = current.pid.map(String.init) ?? "?"
      switch job.overlap {
      case .skip:
        actions.append(
          .log(
            .warning, "fire skipped: the previous run is still going (overlap: skip)",
            metadata.merging(["running_pid": .string(pid)]) { $1 }))
        actions.append(
          .recordSkipped(
            job: job, scheduled: scheduled, trigger: trigger,
            message:
              "the run started for \(JobSchedules.iso(current.scheduled)) (process \(pid)) was still going (overlap: skip)"
          ))
      case .queue:
        if let waiting = queued[job.name] {
          actions.append(.log(.warning, "fire skipped: a run is already queued", metadata))
          actions.append(
            .recordSkipped(
              job: job, scheduled: scheduled, trigger: trigger,
              message:
                "a run for \(JobSchedules.iso(waiting)) was already queued behind the running one (overlap: queue)"
            ))
        } else {
          actions.append(.log(.info, "fire queued behind the running run (overlap: queue)", metadata))
          queued[job.name] = scheduled
        }
      }
      return
    }
    start(job, scheduled: scheduled, trigger: trigger, now: now, &actions)
  }

  mutating func start(
    _ job: Job, scheduled: Date, trigger: RunTrigger, now: Date, _ actions: inout [JobsAction]
  ) {
    running[job.name] = Running(job: job, pid: nil, scheduled: scheduled, trigger: trigger, started: now)
    actions.append(
      .launch(
        JobsLaunch(
          job: job, scheduled: scheduled, trigger: trigger, notAfter: Self.notAfter(job, scheduled: scheduled)
        )))
  }

  // MARK: - Runs

  mutating func finished(_ name: String, pid: pid_t, status: Int32, now: Date, _ actions: inout [JobsAction])
  {
    guard let entry = running[name], entry.pid == pid else { return }
    running[name] = nil
    actions.append(.finished(entry, status: status))
    if let waiting = queued.removeValue(forKey: name) {
      if shuttingDown {
        actions.append(.log(.notice, "queued fire dropped: the daemon is stopping", ["job": .string(name)]))
        actions.append(
          .recordSkipped(
            job: entry.job, scheduled: waiting, trigger: .queued,
            message: "the daemon stopped before it could run"))
      } else if let job = jobs.first(where: { $0.name == name }), job.enabled {
        start(job, scheduled: waiting, trigger: .queued, now: now, &actions)
      }
    }
  }

  // MARK: - Reload and shutdown

  mutating func reload(_ loaded: [Job], now: Date, _ actions: inout [JobsAction]) {
    let old = Dictionary(jobs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    jobs = loaded
    var kept = nextFire
    nextFire = [:]
    for job in loaded {
      if let previous = old[job.name], previous.schedule.description == job.schedule.description,
        previous.timeZone == job.timeZone, previous.enabled == job.enabled,
        let next = kept.removeValue(forKey: job.name)
      {
        nextFire[job.name] = next
      } else {
        if old[job.name] == nil || !(old[job.name]!.enabled) || !job.enabled {
          actions.append(.recordLastFire(job: job.name, at: now))
        }
        nextFire[job.name] = job.calendar.next(after: now)
      }
      actions.append(describe(job, old[job.name] == nil ? "job added" : "job loaded", now: now))
    }
    for name in old.keys where !loaded.contains(where: { $0.name == name }) {
      actions.append(
        .log(
          .info, "job removed", ["job": .string(name), "running": .stringConvertible(running[name] != nil)]))
      queued[name] = nil
    }
  }

  /// Stops firing; each running run finishes (`shutdown: finish`) or is interrupted cleanly
  /// (`shutdown: abort`: no new host starts, running tasks finish). `force` kills running tasks.
  mutating func beginShutdown(force: Bool, _ actions: inout [JobsAction]) {
    if !shuttingDown {
      actions.append(
        .log(
          .notice, "stopping",
          ["running": .stringConvertible(running.count), "queued": .stringConvertible(queued.count)]))
    }
    shuttingDown = true
    for (name, waiting) in queued {
      if let job = jobs.first(where: { $0.name == name }) {
        actions.append(
          .recordSkipped(
            job: job, scheduled: waiting, trigger: .queued, message: "the daemon stopped before it could run")
        )
      }
    }
    queued = [:]
    for (name, entry) in running {
      guard let pid = entry.pid else { continue }
      if force {
        actions.append(
          .log(
            .warning, "killing the running run's tasks",
            ["job": .string(name), "pid": .stringConvertible(pid)]))
        actions.append(.signal(pid: pid, SIGTERM))
      } else if entry.job.shutdown == .abort && !entry.stopping {
        actions.append(
          .log(
            .notice, "interrupting the running run (shutdown: abort)",
            ["job": .string(name), "pid": .stringConvertible(pid)]))
        actions.append(.signal(pid: pid, SIGINT))
        running[name]?.stopping = true
      } else if !entry.stopping {
        actions.append(
          .log(
            .notice, "waiting for the running run to finish (shutdown: finish)",
            ["job": .string(name), "pid": .stringConvertible(pid)]))
        running[name]?.stopping = true
      }
    }
  }
}
