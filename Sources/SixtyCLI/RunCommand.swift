import ArgumentParser
import Foundation
import InstanceConnect
import SixtyCalendar
import SixtyCore
import SixtyExecution
import SixtyHistory
import SixtyKeys
import SixtyPlanning
import SixtyPlaybook
import SixtyPolicy
import SixtyReport
import SixtyScheduler

struct RunCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Run a playbook across the fleet, pushing each host's key just before its turn.",
    discussion: """
      Exit status: 0 all hosts ok, 1 some host failed, 2 bad input, 3 refused by policy, 4 aborted \
      (failure threshold, window, timeout or interrupt). The first Ctrl-C stops starting new work \
      and lets running tasks finish; a second kills them.
      """)

  @OptionGroup var options: PlaybookOptions
  @OptionGroup var connect: ConnectOptions

  @Option(name: .long, help: "Hosts at once (caps the policy's concurrency).")
  var forks: Int?

  @Flag(name: .long, help: "Print the plan and touch nothing.")
  var dryRun = false

  @Option(name: .long, help: "Write complete results as JSON to this file.")
  var report: String?

  @Option(name: .long, help: "Write JUnit XML (one test case per host and task) to this file.")
  var junit: String?

  @Option(
    name: .long,
    help: "Write a self-contained HTML report (summary, per-host timeline, failures, output) to this file.")
  var html: String?

  @Flag(name: .long, help: "No live progress line, even on a terminal.")
  var noProgress = false

  @Flag(name: .long, help: "Print each task's output grouped at the end, identical outputs merged.")
  var groupOutput = false

  @Option(name: .long, help: "The ssh program (default: ssh from PATH).")
  var ssh: String = "ssh"

  @Option(
    name: .long,
    help: "Start no host after this time (ISO 8601); hosts not started by then are reported as not started.")
  var notAfter: String?

  @OptionGroup var history: HistoryOptions

  @Option(name: .long, help: .hidden) var job: String?
  @Option(name: .long, help: .hidden) var trigger: String?
  @Option(name: .long, help: .hidden) var scheduledFor: String?
  @Option(name: .long, help: .hidden) var rerunOf: Int64?

  func validate() throws {
    if let forks, forks < 1 { throw ValidationError("--forks must be at least 1, not \(forks).") }
    if let notAfter, parseTime(notAfter) == nil {
      throw ValidationError(
        "--not-after '\(notAfter)' is not an ISO 8601 time; expected something like 2026-12-24T03:30:00Z.")
    }
    if let trigger, RunTrigger(rawValue: trigger) == nil {
      throw ValidationError("--trigger '\(trigger)' is not one of manual, schedule, catch-up, queued, rerun.")
    }
  }

  func run() async throws {
    guard options.inputs.inventoryPath != nil else {
      throw ValidationError("sixty run needs an inventory: pass -i INVENTORY (or set SIXTY_INVENTORY).")
    }
    let outcome = PlanLoader.load(await InventoryResolver.load(options.inputs, ec2: options.ec2))
    printDiagnostics(outcome.diagnostics.filter { $0.kind != .policy || outcome.plan == nil })
    guard let plan = outcome.plan else { throw ExitCode(outcome.exitCode) }
    if plan.isRefused {
      writeStandardOutput(Array(PlanTextRenderer.render(plan).utf8))
      throw ExitCode(3)
    }
    if dryRun {
      writeStandardOutput(Array(PlanTextRenderer.render(plan).utf8))
      throw ExitCode(0)
    }
    try RunCommand.checkWindows(plan)
    var settings = RunSettings(
      forks: forks, report: report, junit: junit, groupOutput: groupOutput, ssh: ssh, connect: connect,
      progress: !noProgress)
    settings.html = html
    settings.notAfter = notAfter.flatMap { parseTime($0) }
    settings.history = history.settings
    settings.history.job = job
    settings.history.trigger = trigger.flatMap(RunTrigger.init(rawValue:)) ?? .manual
    settings.history.scheduledFor = scheduledFor.flatMap { parseTime($0) }
    settings.history.rerunOf = rerunOf
    settings.history.limit = options.limit
    settings.history.extraVarNames = options.extraVars.compactMap {
      $0.split(separator: "=").first.map(String.init)
    }
    let code = try await RunSession(plan: plan, settings: settings).execute()
    throw ExitCode(code)
  }
}

extension RunCommand {
  /// The time after which no host of `play` may start, from its maintenance windows (the play's
  /// own and the organisation's; within each group one open window is enough). Nil when the play
  /// has no windows.
  /// - Throws: `CLIError` exit 4 when a required window is closed (naming when it opens next),
  ///   exit 2 for a schedule that cannot be evaluated.
  static func windowCutoff(_ play: PlayPlan, now: Date = Date()) throws -> Date? {
    var cutoff: Date?
    let groups = [(play.policy.windows, "its"), (play.policy.organisationWindows, "the organisation's")]
    for (windows, owner) in groups where !windows.isEmpty {
      var best: Date?
      var nextOpening: (name: String, at: Date)?
      for window in windows {
        let place = window.location.map { "\($0): " } ?? ""
        let state: WindowState
        do {
          state = try WindowEvaluator.state(of: window, at: now)
        } catch {
          throw CLIError("\(place)\(error.description).", code: 2)
        }
        if let limit = state.startCutoff, limit > now {
          best = max(best ?? limit, limit)
        } else if let next = state.nextOpening, nextOpening.map({ next < $0.at }) ?? true {
          nextOpening = (window.name, next)
        }
      }
      guard let best else {
        let names = windows.map { "'\($0.name)'" }.joined(separator: ", ")
        let when =
          nextOpening.map { " The next opening is '\($0.name)' at \($0.at.formatted(.iso8601))." } ?? ""
        throw CLIError(
          "the play '\(play.name)' may start hosts only inside \(owner) maintenance window\(windows.count == 1 ? "" : "s") \(names), and none is open (or all are past their cutoff) now.\(when)",
          code: 4)
      }
      cutoff = min(cutoff ?? best, best)
    }
    return cutoff
  }

  /// Checks every play's windows before anything is pushed.
  static func checkWindows(_ plan: Plan) throws {
    for play in plan.plays { _ = try windowCutoff(play) }
  }
}

/// What `sixty run` and `sixty exec` share once the plan exists.
struct RunSettings {
  var forks: Int?
  var report: String?
  var junit: String?
  var html: String?
  var groupOutput: Bool
  var ssh: String
  var connect: ConnectOptions
  var progress = true
  var history = HistorySettings()
  /// No host starts after this time (a scheduled job's window).
  var notAfter: Date?
}

/// One `sixty run`: the key, the signal handling, each play in order, the output and the report.
final class RunSession: @unchecked Sendable {
  let plan: Plan
  let command: RunSettings
  let printer = LinePrinter()
  let started = Date()
  let outputs = OutputCollector()

  /// The run's key pairs, one per key type its plays use. Generation starts with the session, on
  /// a thread of its own (an RSA key takes 0.1–0.5 s), and overlaps the history, the host locks
  /// and the client's set-up.
  let keys: Task<[LoginKeyType: SSHKeyPair], Error>
  /// The key types in the order the plays first use them.
  let keyTypes: [LoginKeyType]

  init(plan: Plan, settings: RunSettings) {
    self.plan = plan
    self.command = settings
    // Before any private key exists in this process.
    CoreDumps.disable()
    var types: [LoginKeyType] = []
    for play in plan.plays where !types.contains(play.policy.keyType) { types.append(play.policy.keyType) }
    if types.isEmpty { types = [Policy.defaults.keyType] }
    keyTypes = types
    keys = Task.detached(priority: .userInitiated) {
      var pairs: [LoginKeyType: SSHKeyPair] = [:]
      for type in types { pairs[type] = try SSHKeyPair.generate(type.keyType, comment: "sixty-run") }
      return pairs
    }
  }

  /// Where the run is, for the SIGINT/SIGTERM handler: nothing in flight (before the first play,
  /// between plays), a play's scheduler at work, or the reports being written.
  enum Phase {
    case idle
    case play(Scheduler, SSHExecutor)
    case reporting
  }
  // `phaseLock` protects `phase` and `interruptedWhileIdle`.
  let phaseLock = NSLock()
  var phase: Phase = .idle
  var interruptedWhileIdle = false
  var isInterruptedWhileIdle: Bool { phaseLock.withLock { interruptedWhileIdle } }
  /// The play that did not start because of a signal (main flow only).
  var stoppedBefore: String?

  /// SIGINT/SIGTERM at any point of the run. `count` is 1 for a first Ctrl-C and 2 or more for a
  /// second one or SIGTERM.
  func interrupted(count: Int, recorder: RunRecorder) {
    let current: Phase = phaseLock.withLock {
      if case .idle = phase { interruptedWhileIdle = true }
      return phase
    }
    switch current {
    case .idle:
      // Nothing is in flight: the run stops where it is (a host-lock wait ends within 0.5 s).
      printer.line("sixty: interrupted; no play starts")
    case .play(let scheduler, let executor):
      printer.line(
        count == 1
          ? "sixty: interrupted; no new work starts, running tasks finish (Ctrl-C again to kill them)"
          : "sixty: killing running tasks")
      scheduler.interrupt()
      if count > 1 { executor.killAll() }
    case .reporting:
      // Every host has finished and the key is wiped; a report write may block (a FIFO, a hung
      // file system), so stop now.
      printer.line("sixty: interrupted while writing the reports; stopping (every host had finished)")
      recorder.finish(status: .aborted, exitCode: 4, message: "interrupted while writing the reports")
      exit(4)
    }
  }

  /// The live status line, on a terminal only.
  lazy var board: ProgressBoard? = command.progress && isatty(1) == 1 ? ProgressBoard(printer: printer) : nil

  func execute() async throws -> Int32 {
    let recorder = RunRecorder(settings: command.history, printer: printer)
    recorder.begin(plan: plan)
    // One handler for the whole run, so a signal at any phase is handled (never the default
    // action, which would leave the key directory and a "running" record behind).
    let signals = InterruptCounter().install { [self] count in interrupted(count: count, recorder: recorder) }
    defer { signals.forEach { $0.cancel() } }
    do {
      try await recorder.lockHosts(plan: plan) { [self] in isInterruptedWhileIdle }
      let (code, message) = try await execute(recorder: recorder)
      recorder.finish(status: RunStatus(exitCode: code), exitCode: code, message: message)
      return code
    } catch let error as CLIError {
      let status: RunStatus = error.code == 3 ? .refused : error.code == 4 ? .aborted : .error
      recorder.finish(status: status, exitCode: error.code, message: error.message)
      throw error
    } catch {
      recorder.finish(status: .error, exitCode: 2, message: "\(error)")
      throw error
    }
  }

  func execute(recorder: RunRecorder) async throws -> (Int32, String?) {
    CoreDumps.disable()
    // Key directories left by a run that was killed (SIGKILL, power loss) are wiped first.
    let keyParent = ProcessInfo.processInfo.environment["SIXTY_KEY_DIR"]
    let swept = EphemeralKeyDirectory.sweepStale(parent: keyParent)
    if !swept.isEmpty {
      printer.line(
        "sixty: wiped \(swept.count) key director\(swept.count == 1 ? "y" : "ies") left by a run that was killed: \(swept.joined(separator: ", "))"
      )
    }
    let pairs = try await keys.value
    let fingerprints = keyTypes.compactMap { pairs[$0]?.fingerprint }.joined(separator: ", ")
    recorder.record(keyFingerprint: fingerprints)
    // No .pub files: ssh then signs with an RSA or ECDSA key at once (see LoginKeyType.rsa).
    let directory = try EphemeralKeyDirectory(
      keys: keyTypes.compactMap { pairs[$0] }, parent: keyParent, publicKeyFiles: false)
    defer { directory.wipe() }
    let client: InstanceConnectClient
    do {
      client = try await command.connect.client()
    } catch let error as InstanceConnectError {
      throw CLIError(error.description, code: error.exitCode)
    }
    let knownHostsFile = History.defaultKnownHostsFile()
    if plan.plays.contains(where: { $0.policy.hostKeyPolicy == .acceptNew }) {
      do {
        try SSHExecutor.prepareKnownHostsFile(knownHostsFile)
      } catch {
        throw CLIError("\(error); set SIXTY_KNOWN_HOSTS to a file Sixty can write.", code: 2)
      }
    }
    var playResults: [(PlayPlan, RunPreparation.Prepared, RunResult)] = []
    var stopped = false
    for play in plan.plays where !stopped {
      if isInterruptedWhileIdle {
        stoppedBefore = play.name
        break
      }
      let prepared = RunPreparation.prepare(play)
      guard !prepared.hosts.isEmpty else { continue }
      printer.line(
        "== play: \(play.name) (\(prepared.hosts.count) host\(prepared.hosts.count == 1 ? "" : "s"))")
      guard let pair = pairs[play.policy.keyType] else {
        throw CLIError(
          "internal error: no \(play.policy.keyType.description) key for play '\(play.name)'.", code: 2)
      }
      let executor = SSHExecutor(
        targets: prepared.targets, runDirectory: directory.path,
        keyPath: directory.privateKeyPath(for: play.policy.keyType.keyType),
        hostKeyPolicy: play.policy.hostKeyPolicy,
        connectTimeout: max(1, Int(play.policy.connectTimeout.seconds)),
        ssh: command.ssh, knownHostsFile: knownHostsFile)
      let names = prepared.taskNames
      let printer = self.printer
      board?.begin(play: play.name, hosts: prepared.hosts.count)
      let grouped = command.groupOutput
      let outputs = self.outputs
      executor.onCapture = { capture in
        let task = names[capture.host]?[capture.task] ?? "task \(capture.task)"
        outputs.add(play: play.name, task: task, capture: capture)
        if grouped {
          printer.line(String(format: "%@ | %@ | exit %d", capture.host, task, capture.status))
          return
        }
        let seconds = capture.ended.timeIntervalSince(capture.started)
        var text = String(format: "%@ | %@ | exit %d (%.2f s)\n", capture.host, task, capture.status, seconds)
        for line in capture.stdout.text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(
          capture.stdout.text.hasSuffix("\n") ? 1 : 0) where !capture.stdout.bytes.isEmpty
        {
          text += "\(capture.host) | \(line)\n"
        }
        for line in capture.stderr.text.split(separator: "\n").prefix(200) {
          text += "\(capture.host) ! \(line)\n"
        }
        printer.write(text)
      }
      let pusher = InstanceConnectPusher(
        client: client, publicKey: pair.authorizedKey, instances: prepared.instances,
        rate: play.policy.pushRate,
        burst: play.policy.pushBurst)
      // Windows are checked again as each play starts: an earlier play may have taken time.
      var cutoff = try RunCommand.windowCutoff(play)
      if let notAfter = command.notAfter {
        guard notAfter > Date() else {
          throw CLIError(
            "the run may start hosts only until \(notAfter.formatted(.iso8601)) (--not-after), and that time has passed.",
            code: 4)
        }
        cutoff = min(cutoff ?? notAfter, notAfter)
      }
      let monotonicCutoff = cutoff.map {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9 + $0.timeIntervalSinceNow
      }
      var concurrency = play.policy.concurrency
      if let forks = command.forks { concurrency = min(concurrency, forks) }

      let policy = SchedulePolicy(
        concurrency: concurrency, batches: prepared.batches, failureThreshold: play.failureThreshold,
        ttl: play.policy.keyTTL.seconds, margin: play.policy.keyMargin.seconds,
        perHostParallelism: play.policy.hostParallelism, runTimeout: play.policy.runTimeout?.seconds,
        startCutoff: monotonicCutoff, pushAhead: true)
      let scheduler = Scheduler(hosts: prepared.hosts, policy: policy, pusher: pusher, executor: executor)
      let interruptedBefore: Bool = phaseLock.withLock {
        if interruptedWhileIdle { return true }
        phase = .play(scheduler, executor)
        return false
      }
      if interruptedBefore {
        stoppedBefore = play.name
        break
      }
      let result: RunResult = await withCheckedContinuation { continuation in
        scheduler.start(events: { [board] event in
          board?.handle(event)
          switch event {
          case .end, .retry, .reconnect: printer.line("-- \(event)")
          default: break
          }
        }) { continuation.resume(returning: $0) }
      }
      phaseLock.withLock { phase = .idle }
      executor.closeAll()
      playResults.append((play, prepared, result))
      recorder.record(
        play: play, position: playResults.count - 1, concurrency: concurrency, prepared: prepared,
        result: result,
        session: self)
      if result.outcome != .completed { stopped = true }
    }
    board?.stop()
    directory.wipe()
    phaseLock.withLock { phase = .reporting }
    if command.groupOutput { printer.write(outputs.grouped()) }
    printer.write(recap(playResults))
    var message: String?
    for (play, _, result) in playResults {
      switch result.outcome {
      case .completed: continue
      case .aborted(let why): message = "play '\(play.name)' aborted: \(why)"
      case .interrupted: message = "play '\(play.name)' interrupted"
      case .timedOut: message = "play '\(play.name)' timed out"
      }
    }
    if let name = stoppedBefore { message = "interrupted before play '\(name)' started" }
    if command.junit != nil || command.report != nil || command.html != nil {
      let report = runReport(
        playResults, message: message, keyFingerprint: fingerprints, runID: recorder.currentRunID)
      let outputs: [(path: String?, label: String, name: String, render: () -> [UInt8])] = [
        (command.junit, "junit", "JUnit report", { Array(report.junit().utf8) }),
        (command.report, "report", "report", { report.json() }),
        (command.html, "html", "HTML report", { Array(report.html().utf8) }),
      ]
      for output in outputs {
        guard let path = output.path else { continue }
        do {
          try Data(output.render()).write(to: URL(fileURLWithPath: path))
          printer.line("\(output.label): \(path)")
        } catch {
          printer.line("sixty: error: cannot write the \(output.name) \(path): \(error.localizedDescription)")
        }
      }
    }
    return (exitCode(playResults), message)
  }

  /// The playbook as the user knows it (`sixty exec` writes a temporary one).
  var playbookName: String {
    plan.playbookPath.contains("/sixty-exec-") ? "sixty exec" : plan.playbookPath
  }

  func exitCode(_ results: [(PlayPlan, RunPreparation.Prepared, RunResult)]) -> Int32 {
    if stoppedBefore != nil { return 4 }
    if results.contains(where: { $0.2.outcome != .completed }) { return 4 }
    if results.contains(where: { $0.2.hosts.contains { $0.status != .ok } }) { return 1 }
    return 0
  }

  func describe(_ result: TaskResult) -> String {
    switch result {
    case .pending: "pending"
    case .ok: "ok"
    case .failed(let why): "failed (\(why))"
    case .timedOut: "timed out"
    case .skipped(let why): "skipped (\(why))"
    }
  }

  func recap(_ results: [(PlayPlan, RunPreparation.Prepared, RunResult)]) -> String {
    var text = "\nRECAP\n"
    text +=
      "host".padding(toLength: 20, withPad: " ", startingAt: 0)
      + " status       ok  failed  skipped  push→auth\n"
    for (play, prepared, result) in results {
      if results.count > 1 { text += "[\(play.name)]\n" }
      for (index, host) in result.hosts.enumerated() {
        let ok = host.tasks.filter { if case .ok = $0 { true } else { false } }.count
        let failed = host.tasks.filter {
          switch $0 {
          case .failed, .timedOut: true
          default: false
          }
        }.count
        let skipped = host.tasks.filter { if case .skipped = $0 { true } else { false } }.count
        var latency = "-"
        if let auth = host.authenticated, let push = host.pushes.last(where: { $0 <= auth }) {
          latency = String(format: "%.0f ms", (auth - push) * 1000)
        }
        text += prepared.hosts[index].name.padding(toLength: 20, withPad: " ", startingAt: 0)
        text += " " + host.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
        text += String(format: " %3d  %6d  %7d  %@", ok, failed, skipped, latency)
        if let message = host.message { text += "  (\(message))" }
        text += "\n"
      }
      switch result.outcome {
      case .completed: break
      case .aborted(let why): text += "run aborted: \(why)\n"
      case .interrupted: text += "run interrupted\n"
      case .timedOut: text += "run timed out\n"
      }
    }
    if let name = stoppedBefore { text += "run interrupted before play '\(name)' started\n" }
    return text
  }

  /// The report of the run as it ends, for `--report`, `--junit` and `--html`: each task's
  /// output as captured.
  func runReport(
    _ results: [(PlayPlan, RunPreparation.Prepared, RunResult)], message: String?, keyFingerprint: String,
    runID: Int64?
  ) -> RunReport {
    let code = exitCode(results)
    let plays = results.map { play, prepared, result in
      let (outcome, reason) = Self.outcomeName(result.outcome)
      return RunReport.Play(
        name: play.name, outcome: outcome, reason: reason, keyTTL: play.policy.keyTTL.seconds,
        concurrency: min(play.policy.concurrency, command.forks ?? .max),
        hosts: hostRecords(play: play, prepared: prepared, result: result, outputTail: false))
    }
    return RunReport(
      runID: runID, playbook: playbookName, started: started, finished: Date(),
      status: RunStatus(exitCode: code), exitCode: Int(code), message: message,
      inventory: plan.inventoryPath.map(RunRecorder.absolute),
      policy: plan.policyPath.map(RunRecorder.absolute),
      limit: command.history.limit, job: command.history.job, trigger: command.history.trigger,
      startedBy: NewRun.currentUser, keyFingerprint: keyFingerprint, outputIsTail: false, plays: plays)
  }

  /// `completed`, `aborted` (with the reason), `interrupted` or `timed out`.
  static func outcomeName(_ outcome: RunResult.Outcome) -> (PlayOutcome, String?) {
    switch outcome {
    case .completed: (.completed, nil)
    case .aborted(let why): (.aborted, why)
    case .interrupted: (.interrupted, nil)
    case .timedOut: (.timedOut, nil)
    }
  }

  /// What happened on each host of a play, with wall-clock times; each task's output whole or
  /// cut to its last 4 KB (for the history).
  func hostRecords(play: PlayPlan, prepared: RunPreparation.Prepared, result: RunResult, outputTail: Bool)
    -> [HostRecord]
  {
    // Scheduler times are monotonic seconds; anchor them to the wall clock at the start.
    let monoStart = Double(DispatchTime.now().uptimeNanoseconds) / 1e9 - Date().timeIntervalSince(started)
    func wall(_ t: Double) -> Date { started.addingTimeInterval(t - monoStart) }
    var records: [HostRecord] = []
    for (index, host) in result.hosts.enumerated() {
      let scheduled = prepared.hosts[index]
      let target = prepared.targets[scheduled.name]
      var tasks: [TaskRecord] = []
      for (taskIndex, task) in host.tasks.enumerated() {
        let name = scheduled.tasks[taskIndex].name
        var record = TaskRecord(name: name, status: .pending, attempts: host.attempts[taskIndex])
        switch task {
        case .ok(let code):
          record.status = .ok
          record.exitStatus = code
        case .failed(let why):
          record.status = .failed
          record.reason = why
        case .timedOut: record.status = .timedOut
        case .skipped(let why):
          record.status = .skipped
          record.reason = why
        case .pending: break
        }
        if let output = outputs.entry(play: play.name, host: scheduled.name, task: name) {
          record.exitStatus = output.status
          record.startedAt = output.started
          record.finishedAt = output.ended
          record.stdoutTail = outputTail ? TaskRecord.tail(output.stdout) : output.stdout
          record.stderrTail = outputTail ? TaskRecord.tail(output.stderr) : output.stderr
        }
        tasks.append(record)
      }
      var latency: Int?
      if let auth = host.authenticated, let push = host.pushes.last(where: { $0 <= auth }) {
        latency = Int((auth - push) * 1000)
      }
      let status: HostStatus =
        switch host.status {
        case .pending: .pending
        case .ok: .ok
        case .failed: .failed
        case .unreachable: .unreachable
        case .timedOut: .timedOut
        case .notStarted: .notStarted
        }
      records.append(
        HostRecord(
          play: play.name, host: scheduled.name,
          address: target.map { "\($0.address):\($0.port)" } ?? "", user: scheduled.user,
          status: status, message: host.message, pushes: host.pushes.map(wall),
          authenticatedAt: host.authenticated.map(wall), pushToAuthMilliseconds: latency,
          startedAt: host.started.map(wall), finishedAt: host.finished.map(wall), reconnects: host.reconnects,
          tasks: tasks))
    }
    return records
  }
}

/// Every task's output, for `--group-output`, the reports and the history.
final class OutputCollector: @unchecked Sendable {
  struct Entry {
    var play: String
    var host: String
    var task: String
    var stdout: String
    var stderr: String
    var status: Int32
    var started: Date
    var ended: Date
  }
  struct Key: Hashable {
    var play: String
    var host: String
    var task: String
  }
  // `lock` protects `entries` and `latest`.
  let lock = NSLock()
  var entries: [Entry] = []
  /// The index in `entries` of each task's last attempt.
  var latest: [Key: Int] = [:]

  func add(play: String, task: String, capture: TaskCapture) {
    lock.withLock {
      latest[Key(play: play, host: capture.host, task: task)] = entries.count
      entries.append(
        Entry(
          play: play, host: capture.host, task: task, stdout: capture.stdout.text,
          stderr: capture.stderr.text, status: capture.status, started: capture.started, ended: capture.ended)
      )
    }
  }

  /// The last attempt's output of a task.
  func entry(play: String, host: String, task: String) -> Entry? {
    lock.withLock { latest[Key(play: play, host: host, task: task)].map { entries[$0] } }
  }

  /// Per task, hosts with identical output merged (like `dshbak -c`).
  func grouped() -> String {
    let all = lock.withLock { entries }
    var text = ""
    var tasks: [String] = []
    for entry in all where !tasks.contains(entry.task) { tasks.append(entry.task) }
    for task in tasks {
      var groups: [(key: String, hosts: [String])] = []
      for entry in all where entry.task == task {
        let key =
          "exit \(entry.status)\n" + entry.stdout + (entry.stderr.isEmpty ? "" : "[stderr]\n" + entry.stderr)
        if let index = groups.firstIndex(where: { $0.key == key }) {
          groups[index].hosts.append(entry.host)
        } else {
          groups.append((key, [entry.host]))
        }
      }
      for group in groups {
        text += "---------------- \(task): \(group.hosts.joined(separator: ",")) ----------------\n"
        text += group.key.hasSuffix("\n") ? group.key : group.key + "\n"
      }
    }
    return text
  }
}

/// Serialises output lines from many threads; on a terminal, keeps the status line below them.
final class LinePrinter: @unchecked Sendable {
  let lock = NSLock()
  var status: String?

  func write(_ text: String) {
    lock.withLock {
      if let status {
        writeStandardOutput(Array(("\r\u{1B}[K" + text + status).utf8))
      } else {
        writeStandardOutput(Array(text.utf8))
      }
    }
  }

  func line(_ text: String) { write(text + "\n") }

  func setStatus(_ text: String?) {
    lock.withLock {
      status = text
      writeStandardOutput(Array(("\r\u{1B}[K" + (text ?? "")).utf8))
    }
  }
}

/// Hosts done, failed and running, the task each is on, and the time elapsed; redrawn twice a
/// second by a dispatch timer.
final class ProgressBoard: @unchecked Sendable {
  let printer: LinePrinter
  // `lock` protects everything below.
  let lock = NSLock()
  var play = ""
  var total = 0
  var done = 0
  var failed = 0
  var current: [String: String] = [:]
  var start = Date()
  var timer: DispatchSourceTimer?

  init(printer: LinePrinter) { self.printer = printer }

  func begin(play: String, hosts: Int) {
    lock.withLock {
      self.play = play
      total = hosts
      done = 0
      failed = 0
      current = [:]
      if timer == nil {
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now(), repeating: .milliseconds(500))
        timer.setEventHandler { [weak self] in self?.draw() }
        timer.resume()
        self.timer = timer
      }
    }
  }

  func handle(_ event: SchedulerEvent) {
    lock.withLock {
      switch event {
      case .push(let host): current[host] = "pushing key"
      case .connect(let host): current[host] = "connecting"
      case .authenticated(let host): current[host] = "connected"
      case .start(let host, let task): current[host] = task
      case .end(let host, let status):
        current[host] = nil
        done += 1
        if status != .ok { failed += 1 }
      case .pushAhead, .reconnect, .retry: break
      }
    }
  }

  func draw() {
    let text: String = lock.withLock {
      let elapsed = Int(Date().timeIntervalSince(start))
      let running = current.sorted { $0.key < $1.key }.prefix(3).map { "\($0.key) (\($0.value))" }
      var line = String(
        format: "[%d:%02d] %@: %d/%d done, %d failed, %d running", elapsed / 60, elapsed % 60, play, done,
        total, failed, current.count)
      if !running.isEmpty {
        line += ": " + running.joined(separator: ", ") + (current.count > 3 ? ", …" : "")
      }
      let width = 160
      return line.count > width ? String(line.prefix(width - 1)) + "…" : line
    }
    printer.setStatus(text)
  }

  func stop() {
    lock.withLock {
      timer?.cancel()
      timer = nil
    }
    printer.setStatus(nil)
  }
}

/// SIGINT/SIGTERM as counted events on a dispatch queue.
final class InterruptCounter: @unchecked Sendable {
  let lock = NSLock()
  var count = 0

  func install(_ handler: @escaping @Sendable (Int) -> Void) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { number in
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler { [self] in
        let n = lock.withLock {
          count += number == SIGTERM ? 2 : 1
          return count
        }
        handler(n)
      }
      source.resume()
      return source
    }
  }
}

extension LoginKeyType {
  /// The key Sixty generates for this policy setting.
  var keyType: KeyType {
    switch self {
    case .rsa: .rsa2048
    case .rsa4096: .rsa4096
    case .ed25519: .ed25519
    case .ecdsa: .ecdsaP256
    }
  }
}
