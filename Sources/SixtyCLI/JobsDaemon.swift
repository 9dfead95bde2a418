import Foundation
import SixtyRun
import Logging
import ServiceLifecycle
import SixtyCalendar
import SixtyCore
import SixtyHistory

/// `sixty jobs daemon`: fires each job at the times its schedule gives (computed from the schedule,
/// never by sleeping fixed intervals), one run per job at a time, each run a `sixty run` child
/// process recorded in the history.
///
/// Events arrive on one stream and are handled one at a time by `run()`, which owns all state:
/// timer wake-ups, SIGHUP reloads, child exits and shutdown.
final class JobsDaemon: Service, @unchecked Sendable {
  enum Event: Sendable {
    case wake
    case reload
    case exited(job: String, pid: pid_t, status: Int32)
    case shutdown
    case cancel
  }

  struct Running {
    var job: Job
    var pid: pid_t
    var scheduled: Date
    var trigger: RunTrigger
    var started: Date
    var log: String
    var stopping = false
  }

  let jobsPath: String
  let history: History
  let logDirectory: String
  let sixty: String
  let logger: Logger
  /// How long the timer sleeps at most before re-reading the clock (wall-clock jumps, suspend).
  let maxSleep: TimeInterval
  let events: AsyncStream<Event>
  let continuation: AsyncStream<Event>.Continuation
  let notifier: Notifier

  // Owned by `run()`.
  var jobs: [Job] = []
  var nextFire: [String: Date] = [:]
  var running: [String: Running] = [:]
  var queued: [String: Date] = [:]
  var shuttingDown = false
  var notifications: [Task<Void, Never>] = []

  init(
    jobsPath: String, history: History, logDirectory: String, sixty: String, logger: Logger,
    maxSleep: TimeInterval = 30
  ) {
    self.jobsPath = jobsPath
    self.history = history
    self.logDirectory = logDirectory
    self.sixty = sixty
    self.logger = logger
    self.maxSleep = maxSleep
    (events, continuation) = AsyncStream.makeStream(of: Event.self)
    notifier = Notifier(history: history, logger: logger)
  }

  /// Loads the jobs file for the first start.
  /// - Throws: `CLIError` exit 2 with every problem printed.
  func loadInitial() throws {
    let (loaded, diagnostics) = JobsFile.load(path: jobsPath)
    printDiagnostics(diagnostics)
    guard let loaded else {
      throw CLIError("the jobs file \(jobsPath) has errors; the daemon did not start.", code: 2)
    }
    jobs = loaded
  }

  func run() async throws {
    let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
    signal(SIGHUP, SIG_IGN)
    let continuation = self.continuation
    hangup.setEventHandler { continuation.yield(.reload) }
    hangup.resume()
    defer { hangup.cancel() }
    logger.info(
      "daemon started",
      metadata: [
        "jobs": .string(jobsPath), "count": .stringConvertible(jobs.count), "history": .string(history.path),
        "pid": .stringConvertible(getpid()),
      ])
    for job in jobs { describe(job, "job loaded") }
    catchUp(now: Date())
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
      if shuttingDown && running.isEmpty { return }
      let now = Date()
      let due = jobs.filter(\.enabled).compactMap { nextFire[$0.name] }.min()
      let sleep =
        shuttingDown ? maxSleep : max(0, min(maxSleep, (due ?? .distantFuture).timeIntervalSince(now)))
      let continuation = self.continuation
      let timer = Task {
        try? await Task.sleep(for: .milliseconds(Int64(sleep * 1000) + 1))
        if !Task.isCancelled { continuation.yield(.wake) }
      }
      guard let event = await iterator.next() else { return }
      timer.cancel()
      switch event {
      case .wake: if !shuttingDown { fireDue(now: Date()) }
      case .reload: reload()
      case .exited(let job, let pid, let status): finished(job: job, pid: pid, status: status)
      case .shutdown: beginShutdown(force: false)
      case .cancel: beginShutdown(force: true)
      }
    }
  }

  // MARK: - Schedules

  func describe(_ job: Job, _ message: Logger.Message) {
    var metadata: Logger.Metadata = [
      "job": .string(job.name), "schedule": .string(job.schedule.description),
      "timezone": .string(zoneName(job.timeZone)), "enabled": .stringConvertible(job.enabled),
    ]
    if let next = nextFire[job.name] ?? job.calendar.next(after: Date()) {
      metadata["next"] = .string(Self.iso(next))
    }
    logger.info(message, metadata: metadata)
  }

  static func iso(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: date)
  }

  /// The latest fire of `job` in (after, now], and how many fires that range held.
  static func latestFire(of job: Job, after: Date, now: Date) -> (Date, Int)? {
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

  /// After a (re)start: fires missed while the daemon was down run once if the job says
  /// `catch_up: once`, else are logged and dropped.
  func catchUp(now: Date) {
    for job in jobs {
      schedule(job, now: now)
    }
  }

  /// Sets the job's next fire from its last handled fire (from the history), applying catch-up.
  func schedule(_ job: Job, now: Date) {
    let last: Date?
    do {
      last = try history.lastFire(job: job.name)
    } catch {
      logger.error(
        "cannot read the job state",
        metadata: ["job": .string(job.name), "error": .string(error.description)])
      last = nil
    }
    guard let last, job.enabled else {
      // A new (or disabled) job starts from now: nothing before it counts as missed.
      record(lastFire: now, of: job)
      nextFire[job.name] = job.calendar.next(after: now)
      return
    }
    var from = last
    if let (missed, count) = Self.latestFire(of: job, after: last, now: now) {
      if job.catchUp == .once {
        logger.notice(
          "catching up a missed fire",
          metadata: [
            "job": .string(job.name), "missed": .stringConvertible(count),
            "scheduled": .string(Self.iso(missed)),
          ])
        fire(job, scheduled: missed, trigger: .catchUp)
      } else {
        logger.notice(
          "missed fires dropped (catch_up: none)",
          metadata: [
            "job": .string(job.name), "missed": .stringConvertible(count), "last": .string(Self.iso(missed)),
          ])
      }
      record(lastFire: missed, of: job)
      from = missed
    }
    // Nothing in (from, now] is left: `from` is the latest fire up to now.
    nextFire[job.name] = job.calendar.next(after: from)
  }

  func record(lastFire: Date, of job: Job) {
    do {
      try history.setLastFire(job: job.name, at: lastFire)
    } catch {
      logger.error(
        "cannot record the job state",
        metadata: ["job": .string(job.name), "error": .string(error.description)])
    }
  }

  /// Fires every job whose time has come (several fires passed at once, e.g. after a suspend,
  /// count as one: the latest).
  func fireDue(now: Date) {
    for job in jobs where job.enabled {
      guard let due = nextFire[job.name], due <= now else { continue }
      var scheduled = due
      var skipped = 0
      while let next = job.calendar.next(after: scheduled), next <= now {
        scheduled = next
        skipped += 1
      }
      if skipped > 0 {
        logger.warning(
          "fires coalesced (the daemon was suspended or the clock jumped)",
          metadata: ["job": .string(job.name), "coalesced": .stringConvertible(skipped)])
      }
      fire(job, scheduled: scheduled, trigger: .schedule)
      record(lastFire: scheduled, of: job)
      nextFire[job.name] = job.calendar.next(after: scheduled)
    }
  }

  /// The time after which the run's hosts may not start (the job's window), if any.
  static func notAfter(_ job: Job, scheduled: Date) -> Date? {
    guard let duration = job.windowDuration else { return nil }
    return scheduled.addingTimeInterval(Double(duration.milliseconds - job.windowCutoff.milliseconds) / 1000)
  }

  func newRun(_ job: Job, scheduled: Date, trigger: RunTrigger) -> NewRun {
    NewRun(
      playbook: job.playbook, playbookSHA256: RunRecorder.sha256(ofFile: job.playbook),
      inventory: job.inventory,
      policy: job.policy, limit: job.limit, job: job.name, trigger: trigger, scheduledFor: scheduled)
  }

  func fire(_ job: Job, scheduled: Date, trigger: RunTrigger) {
    let metadata: Logger.Metadata = [
      "job": .string(job.name), "scheduled": .string(Self.iso(scheduled)),
      "trigger": .string(trigger.rawValue),
    ]
    if let limit = Self.notAfter(job, scheduled: scheduled), limit <= Date() {
      let message = "the job's window for the fire at \(Self.iso(scheduled)) closed at \(Self.iso(limit))"
      logger.warning("fire skipped: window closed", metadata: metadata)
      recordSkipped(job, scheduled: scheduled, trigger: trigger, message: message)
      return
    }
    if let current = running[job.name] {
      switch job.overlap {
      case .skip:
        logger.warning(
          "fire skipped: the previous run is still going (overlap: skip)",
          metadata: metadata.merging(["running_pid": .stringConvertible(current.pid)]) { $1 })
        recordSkipped(
          job, scheduled: scheduled, trigger: trigger,
          message:
            "the run started for \(Self.iso(current.scheduled)) (process \(current.pid)) was still going (overlap: skip)"
        )
      case .queue:
        if let waiting = queued[job.name] {
          logger.warning("fire skipped: a run is already queued", metadata: metadata)
          recordSkipped(
            job, scheduled: scheduled, trigger: trigger,
            message:
              "a run for \(Self.iso(waiting)) was already queued behind the running one (overlap: queue)")
        } else {
          logger.info("fire queued behind the running run (overlap: queue)", metadata: metadata)
          queued[job.name] = scheduled
        }
      }
      return
    }
    start(job, scheduled: scheduled, trigger: trigger)
  }

  func recordSkipped(_ job: Job, scheduled: Date, trigger: RunTrigger, message: String) {
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

  // MARK: - Runs

  func start(_ job: Job, scheduled: Date, trigger: RunTrigger) {
    var arguments = [
      sixty, "run", job.playbook, "-i", job.inventory, "--no-progress", "--history", history.path, "--job",
      job.name,
      "--trigger", trigger.rawValue, "--scheduled-for", Self.iso(scheduled),
    ]
    if let policy = job.policy { arguments += ["--policy", policy] }
    if let limit = job.limit { arguments += ["--limit", limit] }
    if let limit = Self.notAfter(job, scheduled: scheduled) { arguments += ["--not-after", Self.iso(limit)] }
    let stamp = Self.iso(scheduled).replacingOccurrences(of: ":", with: "")
    let directory = logDirectory + "/" + job.name
    let log = directory + "/" + stamp + "-" + trigger.rawValue + ".log"
    let metadata: Logger.Metadata = [
      "job": .string(job.name), "scheduled": .string(Self.iso(scheduled)),
      "trigger": .string(trigger.rawValue),
    ]
    do {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      let pid = try DaemonChild.spawn(arguments, logPath: log)
      running[job.name] = Running(
        job: job, pid: pid, scheduled: scheduled, trigger: trigger, started: Date(), log: log)
      logger.info(
        "run started",
        metadata: metadata.merging(["pid": .stringConvertible(pid), "log": .string(log)]) { $1 })
      let continuation = self.continuation
      let name = job.name
      Thread.detachNewThread {
        let status = DaemonChild.wait(pid)
        continuation.yield(.exited(job: name, pid: pid, status: status))
      }
    } catch {
      logger.error("run not started", metadata: metadata.merging(["error": .string("\(error)")]) { $1 })
      do {
        try history.recordUnstarted(
          newRun(job, scheduled: scheduled, trigger: trigger), status: .error, exitCode: nil,
          message: "the daemon could not start the run: \(error)")
      } catch {
        logger.error("cannot record the failed start", metadata: ["error": .string(error.description)])
      }
    }
  }

  func finished(job name: String, pid: pid_t, status: Int32) {
    guard let entry = running[name], entry.pid == pid else { return }
    running[name] = nil
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
    if let waiting = queued.removeValue(forKey: name) {
      if shuttingDown {
        logger.notice("queued fire dropped: the daemon is stopping", metadata: ["job": .string(name)])
        recordSkipped(
          entry.job, scheduled: waiting, trigger: .queued, message: "the daemon stopped before it could run")
      } else if let job = jobs.first(where: { $0.name == name }), job.enabled {
        start(job, scheduled: waiting, trigger: .queued)
      }
    }
  }

  /// The last non-empty line of a file, for a run that never got to record itself.
  static func tail(ofFile path: String) -> String {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
    let lines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    return lines.suffix(3).joined(separator: " / ")
  }

  // MARK: - Reload and shutdown

  func reload() {
    let (loaded, diagnostics) = JobsFile.load(path: jobsPath)
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
    let old = Dictionary(jobs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let now = Date()
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
          record(lastFire: now, of: job)
        }
        nextFire[job.name] = job.calendar.next(after: now)
      }
      describe(job, old[job.name] == nil ? "job added" : "job loaded")
    }
    for name in old.keys where !loaded.contains(where: { $0.name == name }) {
      logger.info(
        "job removed", metadata: ["job": .string(name), "running": .stringConvertible(running[name] != nil)])
      queued[name] = nil
    }
    logger.info("reloaded", metadata: ["jobs": .string(jobsPath), "count": .stringConvertible(loaded.count)])
  }

  /// Stops firing; each running run finishes (`shutdown: finish`) or is interrupted cleanly
  /// (`shutdown: abort`: no new host starts, running tasks finish). `force` kills running tasks.
  func beginShutdown(force: Bool) {
    if !shuttingDown {
      logger.notice(
        "stopping",
        metadata: ["running": .stringConvertible(running.count), "queued": .stringConvertible(queued.count)])
    }
    shuttingDown = true
    for (name, waiting) in queued {
      if let job = jobs.first(where: { $0.name == name }) {
        recordSkipped(
          job, scheduled: waiting, trigger: .queued, message: "the daemon stopped before it could run")
      }
    }
    queued = [:]
    for (name, entry) in running {
      if force {
        logger.warning(
          "killing the running run's tasks",
          metadata: ["job": .string(name), "pid": .stringConvertible(entry.pid)])
        kill(entry.pid, SIGTERM)
      } else if entry.job.shutdown == .abort && !entry.stopping {
        logger.notice(
          "interrupting the running run (shutdown: abort)",
          metadata: ["job": .string(name), "pid": .stringConvertible(entry.pid)])
        kill(entry.pid, SIGINT)
        running[name]?.stopping = true
      } else if !entry.stopping {
        logger.notice(
          "waiting for the running run to finish (shutdown: finish)",
          metadata: ["job": .string(name), "pid": .stringConvertible(entry.pid)])
        running[name]?.stopping = true
      }
    }
  }
}

/// A `sixty run` child: its own process group (a terminal's Ctrl-C reaches the daemon only),
/// stdin from /dev/null, stdout and stderr appended to a 0600 log file.
enum DaemonChild {
  static func spawn(_ arguments: [String], logPath: String, environment: [String: String]? = nil) throws
    -> pid_t
  {
    let fd = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw CLIError("cannot open the run log \(logPath): \(String(cString: strerror(errno)))", code: 2)
    }
    defer { close(fd) }
    return try spawn(arguments, stdin: nil, stdout: fd, stderr: fd, environment: environment)
  }

  static func spawn(
    _ arguments: [String], stdin: Int32?, stdout: Int32, stderr: Int32, environment: [String: String]? = nil
  ) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if let stdin {
      posix_spawn_file_actions_adddup2(&actions, stdin, 0)
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_adddup2(&actions, stdout, 1)
    posix_spawn_file_actions_adddup2(&actions, stderr, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setpgroup(&attributes, 0)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for number in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, number) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer {
      argv.forEach { free($0) }
      envp.forEach { free($0) }
    }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard result == 0 else {
      throw CLIError("cannot start \(arguments[0]): \(String(cString: strerror(result)))", code: 2)
    }
    return pid
  }

  /// Waits for the child; its exit status, or 128+signal.
  static func wait(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
      if errno != EINTR { return 255 }
    }
    if status & 0x7f == 0 { return (status >> 8) & 0xff }
    return 128 + (status & 0x7f)
  }
}
