import Foundation
import InstanceConnect
import SixtyExecution
import SixtyHistory
import SixtyKeys
import SixtyPlanning
import SixtyPolicy
import SixtyScheduler
import UnixSignals

/// One run of a plan: the key, the signal handling, each play in order, the recap, the reports and
/// the exit status. Everything it has to say goes to its console as `RunEvent`s.
// @unchecked: `phase` and `interruptedWhileIdle` are behind `phaseLock`; `stoppedBefore` is set by
// the main flow only; everything else is immutable or Sendable.
final class RunSession: @unchecked Sendable {
  let plan: Plan
  let request: RunRequest
  let console: any RunConsole
  let started: TimeAnchor
  let outputs = OutputCollector()
  /// The run's key pairs, one per key type its plays use. Generation starts with the session, on
  /// a thread of its own (an RSA key takes 0.1–0.5 s), and overlaps the history, the host locks
  /// and the client's set-up.
  /// The endpoint is asked first when a play leaves the key type to it (`KeyTypeChoice`).
  let keys: Task<RunKeys, Error>

  /// Where the run is, for the SIGINT/SIGTERM handler: nothing in flight (before the first play,
  /// between plays), a play's scheduler at work, or the reports being written.
  enum Phase {
    case idle
    case play(Scheduler, SSHExecutor)
    case reporting
  }
  let phaseLock = NSLock()
  var phase: Phase = .idle
  var interruptedWhileIdle = false
  var isInterruptedWhileIdle: Bool { phaseLock.withLock { interruptedWhileIdle } }
  /// The play that did not start because of a signal (main flow only).
  var stoppedBefore: String?

  init(plan: Plan, request: RunRequest, console: any RunConsole) {
    self.plan = plan
    self.request = request
    self.console = console
    started = TimeAnchor()
    // Before any private key exists in this process.
    CoreDumps.disable()
    let needsChoice =
      plan.plays.isEmpty || plan.plays.contains { $0.policy.keyType == nil || $0.policy.loginMode == nil }
    let explicit = plan.plays.map(\.policy.keyType)
    let connect = request.connect
    keys = Task.detached(priority: .userInitiated) {
      let capabilities = needsChoice ? await KeyTypeChoice.ask(connect) : nil
      let choice = needsChoice ? KeyTypeChoice.choose(capabilities) : nil
      var types: [LoginKeyType] = []
      for type in explicit.map({ $0 ?? choice?.type ?? .rsa }) where !types.contains(type) {
        types.append(type)
      }
      if types.isEmpty { types = [choice?.type ?? .rsa] }
      var pairs: [LoginKeyType: SSHKeyPair] = [:]
      for type in types { pairs[type] = try SSHKeyPair.generate(type.keyType, comment: "sixty-run") }
      return RunKeys(
        pairs: pairs, types: types, choice: choice, endpointMode: KeyTypeChoice.mode(capabilities))
    }
  }

  func say(_ text: String) { console.handle(.line(text)) }

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
      say("sixty: interrupted; no play starts")
    case .play(let scheduler, let executor):
      say(
        count == 1
          ? "sixty: interrupted; no new work starts, running tasks finish (Ctrl-C again to kill them)"
          : "sixty: killing running tasks")
      scheduler.interrupt()
      if count > 1 { executor.killAll() }
    case .reporting:
      // Every host has finished and the key is wiped; a report write may block (a FIFO, a hung
      // file system), so stop now.
      say("sixty: interrupted while writing the reports; stopping (every host had finished)")
      recorder.finish(status: .aborted, exitCode: 4, message: "interrupted while writing the reports")
      exit(4)
    }
  }

  /// Runs the plan and records it; the run's exit status, or a `RunFailure` (recorded too).
  func execute(playbookDigest: String) async throws -> ExitStatus {
    let recorder = RunRecorder(request: request, console: console)
    try recorder.begin(plan: plan, playbookDigest: playbookDigest)
    // One handler for the whole run, so a signal at any phase is handled (never the default
    // action, which would leave the key directory and a "running" record behind).
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
    let handler = Task { [self] in
      var count = 0
      for await received in signals {
        count += received == .sigterm ? 2 : 1
        interrupted(count: count, recorder: recorder)
      }
    }
    defer { handler.cancel() }
    do {
      try await recorder.lockHosts(plan: plan) { [self] in isInterruptedWhileIdle }
      let (status, message) = try await runPlays(recorder: recorder)
      recorder.finish(status: status.runStatus, exitCode: status.rawValue, message: message)
      return status
    } catch let error as RunFailure {
      let status: RunStatus =
        switch error.status {
        case .refused: .refused
        case .aborted: .aborted
        default: .error
        }
      recorder.finish(status: status, exitCode: error.status.rawValue, message: error.message)
      throw error
    } catch {
      recorder.finish(status: .error, exitCode: 2, message: "\(error)")
      throw error
    }
  }

  /// Every play in order, then the recap and the reports: the exit status and why the run stopped.
  func runPlays(recorder: RunRecorder) async throws -> (ExitStatus, String?) {
    let (runKeys, fingerprints, directory) = try await prepareKeys(recorder: recorder)
    defer { directory.wipe() }
    var client = try await request.connect.client()
    // One pacer for every push of the run, whichever play: it learns the endpoint's pace once.
    let pacer = AdaptivePacer()
    client.pacer = pacer
    let knownHostsFile = History.defaultKnownHostsFile()
    if plan.plays.contains(where: { $0.policy.hostKeyPolicy == .acceptNew }) {
      do {
        try SSHExecutor.prepareKnownHostsFile(knownHostsFile)
      } catch {
        throw RunFailure("\(error); set SIXTY_KNOWN_HOSTS to a file Sixty can write.", status: .badInput)
      }
    }
    // The ssh_config files, read once for the plays that may use the built-in client.
    let sshConfig =
      plan.plays.contains { $0.policy.sshClient == .auto } ? SSHConfigCheck.current() : SSHConfigCheck()
    var results: [PlayResult] = []
    for (playIndex, play) in plan.plays.enumerated() {
      if isInterruptedWhileIdle {
        stoppedBefore = play.name
        break
      }
      var execution = ExecutionPlan(play)
      guard !execution.hosts.isEmpty else { continue }
      await resolveUsers(&execution)
      let keyType = runKeys.type(for: play)
      guard let pair = runKeys.pairs[keyType] else {
        throw RunFailure(
          "internal error: no \(keyType.description) key for play '\(play.name)'.", status: .badInput)
      }
      console.handle(.playStarted(name: play.name, hosts: execution.hosts.count))
      let certificates = runKeys.mode(for: play) == .certificate
      let executor = SSHExecutor(
        targets: execution.targets, runDirectory: directory.path,
        keyPath: directory.privateKeyPath(for: keyType.keyType),
        hostKeyPolicy: play.policy.hostKeyPolicy,
        connectTimeout: max(1, Int(play.policy.connectTimeout.seconds)),
        ssh: request.ssh, extraOptions: request.sshClient.arguments, knownHostsFile: knownHostsFile,
        certificates: certificates)
      // The built-in client logs in where it reaches hosts as OpenSSH would: no process per
      // host, and a certificate signed at once (OpenSSH's client first asks whether the host
      // takes it).
      let clientReason =
        play.policy.sshClient == .openssh
        ? "the policy says ssh_client: openssh" : executor.useBuiltinClient(key: pair, config: sshConfig)
      if request.verbosity >= 1 {
        console.handle(
          .detail(
            level: 1,
            "sixty: ssh client: "
              + (clientReason.map { "OpenSSH, because \($0)" }
                ?? "built-in (one connection per host inside sixty, no ssh process; the key or certificate signed at once)")
          ))
      }
      let names = execution.taskNames
      let (console, outputs) = (self.console, self.outputs)
      if request.verbosity >= 2 {
        executor.onCommand = { console.handle(.detail(level: 2, "sixty: run: " + $0)) }
      }
      let timings = request.verbosity >= 1 ? HostTimings(console: console) : nil
      executor.onCapture = { capture in
        let task = names[capture.host]?[capture.task] ?? "task \(capture.task)"
        outputs.add(play: play.name, task: task, capture: capture)
        console.handle(.taskFinished(play: play.name, task: task, capture: capture))
      }
      var ceiling: AdaptivePacer.Ceiling?
      if let rate = play.policy.pushRate {
        ceiling = AdaptivePacer.Ceiling(
          rate: rate, burst: play.policy.pushBurst ?? PlanTextRenderer.defaultBurst(rate))
      }
      var certificateFile: (@Sendable (String) -> String?)?
      if certificates { certificateFile = { [executor] host in executor.certificatePath(host) } }
      let pusher = InstanceConnectPusher(
        client: client, publicKey: pair.authorizedKey, instances: execution.instances, ceiling: ceiling,
        certificateFile: certificateFile,
        onFailover: { host, failover in
          console.handle(
            .pushFailover(
              PushFailover(host: host.name, failures: failover.failures, servedBy: failover.servedBy)))
        })
      let concurrency = min(play.policy.concurrency, request.forks ?? .max)
      let sharedFailures =
        play.failureThreshold == nil ? nil : recorder.sharedFailures(play: playIndex)
      defer { sharedFailures?.stop() }
      let policy = SchedulePolicy(
        concurrency: concurrency, batches: execution.batches, failureThreshold: play.failureThreshold,
        ttl: play.policy.keyTTL.seconds, margin: play.policy.keyMargin.seconds,
        perHostParallelism: play.policy.hostParallelism, runTimeout: play.policy.runTimeout?.seconds,
        startCutoff: try startCutoff(play).map(started.monotonic), pushAhead: true,
        sharedFailures: sharedFailures)
      let scheduler = Scheduler(
        hosts: execution.hosts, policy: policy,
        pusher: timings.map { TimedPusher(inner: pusher, timings: $0) } ?? pusher, executor: executor)
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
        scheduler.start(events: { event in
          console.handle(.scheduler(event))
          timings?.handle(event)
        }) { continuation.resume(returning: $0) }
      }
      phaseLock.withLock { phase = .idle }
      await executor.close()
      let played = PlayResult(play: play, execution: execution, concurrency: concurrency, result: result)
      results.append(played)
      recorder.record(
        play: play, position: request.shard == nil ? results.count - 1 : playIndex, concurrency: concurrency,
        records: hostRecords(played, outputTail: true), result: result)
      if result.outcome != .completed { break }
    }
    directory.wipe()
    phaseLock.withLock { phase = .reporting }
    console.handle(
      .finished(
        RunSummary(
          plays: results.map {
            .init(name: $0.play.name, hosts: $0.execution.hosts.map(\.name), result: $0.result)
          },
          stoppedBefore: stoppedBefore, outputs: outputs)))
    let message = stopMessage(results)
    writeReports(
      results, message: message, keyFingerprint: fingerprints, runID: recorder.currentRunID,
      pushes: pushesSummary(runKeys, pacer: pacer, plays: results))
    return (exitStatus(results), message)
  }

  /// The users ssh logs in as, for the hosts whose user neither the inventory nor `-u` sets: asked
  /// of `ssh -G` with the run's `-F`, `-J` and `-o`, so ssh_config's `User` is the one pushed for.
  func resolveUsers(_ execution: inout ExecutionPlan) async {
    let resolver = SSHConfigResolver(ssh: request.ssh, client: request.sshClient)
    let unset = execution.targets.filter { !$0.value.userIsSet }
    guard !unset.isEmpty else { return }
    let users = await resolver.users(for: unset)
    execution.use(users: users)
    guard request.verbosity >= 1 else { return }
    for name in unset.keys.sorted() {
      if request.verbosity >= 2, let target = unset[name] {
        console.handle(.detail(level: 2, "sixty: run: " + SSHExecutor.display(resolver.arguments(target))))
      }
      let user =
        users[name].map { "\($0) (from ssh -G)" }
        ?? "\(execution.targets[name]?.user ?? "?") (ssh -G did not say)"
      console.handle(.detail(level: 1, "sixty: \(name): the inventory names no user; pushing for \(user)"))
    }
  }

  /// The run's key pairs and their directory, after wiping what a killed run left behind.
  func prepareKeys(recorder: RunRecorder) async throws -> (
    RunKeys, String, EphemeralKeyDirectory
  ) {
    // Core dumps are off since the session began (`init`). Key directories left by a run that was killed (SIGKILL, power loss) are wiped first.
    let keyParent = ProcessInfo.processInfo.environment["SIXTY_KEY_DIR"]
    let swept = EphemeralKeyDirectory.sweepStale(parent: keyParent)
    if !swept.isEmpty {
      say(
        "sixty: wiped \(swept.count) key director\(swept.count == 1 ? "y" : "ies") left by a run that was killed: \(swept.joined(separator: ", "))"
      )
    }
    let runKeys = try await keys.value
    let (pairs, keyTypes) = (runKeys.pairs, runKeys.types)
    let fingerprints = keyTypes.compactMap { pairs[$0]?.fingerprint }.joined(separator: ", ")
    recorder.record(keyFingerprint: fingerprints)
    // No .pub files: ssh then signs with an RSA or ECDSA key at once (see LoginKeyType.rsa).
    // Certificate mode needs them: ssh pairs a CertificateFile with a key whose public half it can
    // read (and a certificate costs the host no key lookup to ask first).
    let certificates = plan.plays.contains { runKeys.mode(for: $0) == .certificate }
    let directory = try EphemeralKeyDirectory(
      keys: keyTypes.compactMap { pairs[$0] }, parent: keyParent, publicKeyFiles: certificates)
    if request.verbosity >= 1 {
      for type in keyTypes {
        console.handle(
          .detail(
            level: 1,
            "sixty: key: \(type.description) \(pairs[type]?.fingerprint ?? "") in \(directory.privateKeyPath(for: type.keyType))"
          ))
      }
    }
    if request.verbosity >= 1, let choice = runKeys.choice,
      plan.plays.contains(where: { $0.policy.keyType == nil })
    {
      console.handle(
        .detail(level: 1, "sixty: key type: \(choice.type.description), because \(choice.reason)"))
    }
    if request.verbosity >= 1, plan.plays.contains(where: { $0.policy.loginMode == nil }) {
      let mode =
        runKeys.endpointMode == .certificate
        ? "certificates, because the endpoint is a certificate authority that prefers them"
        : "pushed keys, because the endpoint does not prefer certificates"
      console.handle(.detail(level: 1, "sixty: login: \(mode)"))
    }
    return (runKeys, fingerprints, directory)
  }

  /// When the play's hosts must have started by: its windows, checked again as each play starts
  /// (an earlier play may have taken time), and `--not-after`.
  func startCutoff(_ play: PlayPlan) throws(RunFailure) -> Date? {
    let now = Date()
    var cutoff = try MaintenanceWindows.cutoff(play, now: now)
    if let notAfter = request.notAfter {
      guard notAfter > now else {
        throw RunFailure(
          "the run may start hosts only until \(notAfter.formatted(.iso8601)) (--not-after), and that time has passed.",
          status: .aborted)
      }
      cutoff = min(cutoff ?? notAfter, notAfter)
    }
    return cutoff
  }
}

/// The run's key pairs, one per key type its plays use, in the order they first use them, and
/// the endpoint's choice for the plays whose policy sets no type.
struct RunKeys: Sendable {
  var pairs: [LoginKeyType: SSHKeyPair]
  var types: [LoginKeyType]
  var choice: KeyTypeChoice?
  /// The login mode the endpoint prefers, for plays whose policy sets none.
  var endpointMode: LoginMode = .key

  func type(for play: PlayPlan) -> LoginKeyType { play.policy.keyType ?? choice?.type ?? .rsa }
  func mode(for play: PlayPlan) -> LoginMode { play.policy.loginMode ?? endpointMode }
}

/// A play as it ran.
struct PlayResult {
  var play: PlayPlan
  var execution: ExecutionPlan
  var concurrency: Int
  var result: RunResult
}

/// The wall-clock time and the scheduler's monotonic time at one instant, to convert between them.
struct TimeAnchor {
  let wall = Date()
  let uptime = Double(DispatchTime.now().uptimeNanoseconds) / 1e9

  /// A scheduler time (monotonic seconds) as a wall-clock time.
  func date(_ monotonic: Double) -> Date { wall.addingTimeInterval(monotonic - uptime) }
  /// A wall-clock time as a scheduler time.
  func monotonic(_ date: Date) -> Double { uptime + date.timeIntervalSince(wall) }
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
