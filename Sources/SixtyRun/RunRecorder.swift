import Foundation
import SixtyHistory
import SixtyPlanning
import SixtyPolicy
import SixtyScheduler

/// Records one run in the history and holds its host locks. History problems never stop a run:
/// they are printed once as warnings and recording stops; host locks are then not enforced.
// @unchecked: `runID` and `failed` change only under `lock` (or before the run's tasks start).
final class RunRecorder: @unchecked Sendable {
  let history: History?
  let request: RunRequest
  var settings: HistorySettings { request.history }
  var runID: Int64?
  let console: any RunConsole
  // `lock` protects `failed`.
  let lock = NSLock()
  var failed = false
  /// With a shared history: tells it every few seconds that this run's runner is alive (a dispatch
  /// timer, so a busy task pool does not delay it). Protected by `lock`.
  var heartbeat: (any DispatchSourceTimer)?

  init(request: RunRequest, console: any RunConsole) {
    self.request = request
    self.console = console
    let settings = request.history
    guard settings.enabled else {
      history = nil
      return
    }
    let path = settings.path ?? History.defaultPath()
    do {
      let history = try History(path: path)
      let swept = try history.sweepInterrupted()
      if !swept.isEmpty {
        console.handle(
          .line(
            "sixty: marked run\(swept.count == 1 ? "" : "s") \(swept.map(String.init).joined(separator: ", ")) interrupted (its process is gone)."
          ))
      }
      self.history = history
    } catch {
      console.handle(
        .line(
          "sixty: warning: \(error.description); this run is not recorded and host locks are not checked."))
      history = nil
    }
  }

  func say(_ text: String) { console.handle(.line(text)) }

  /// The history while recording has not failed.
  var usable: History? { lock.withLock { failed } ? nil : history }

  /// Stops recording after a history error, saying so once.
  func stopRecording(_ error: HistoryError, while what: String) {
    lock.withLock { failed = true }
    say("sixty: warning: \(error.description) (while \(what)); the rest of this run is not recorded.")
  }

  func attempt<T>(_ what: String, _ body: (History) throws(HistoryError) -> T) -> T? {
    guard let history = usable else { return nil }
    do {
      return try body(history)
    } catch {
      stopRecording(error, while: what)
      return nil
    }
  }

  func attempt<T>(_ what: String, _ body: (History) async throws(HistoryError) -> T) async -> T? {
    guard let history = usable else { return nil }
    do {
      return try await body(history)
    } catch {
      stopRecording(error, while: what)
      return nil
    }
  }

  /// The shard this runner is (`--shard`), if any.
  var shard: Shard? { request.shard }

  /// Records the run as started; a shard joins its run (or creates it).
  /// - Throws: `RunFailure` when a shard cannot join its run: sharded runs need the shared
  ///   history, to count failures across shards.
  func begin(plan: Plan, playbookDigest: String) throws(RunFailure) {
    let hosts = Set(plan.plays.flatMap { play in play.hosts.filter { $0.batch != nil }.map(\.host.name) })
    let new = NewRun(
      playbook: request.playbookPath.map(RunRecorder.absolute) ?? request.playbookLabel,
      playbookSHA256: playbookDigest,
      inventory: plan.inventoryPath.map(RunRecorder.absolute),
      policy: plan.policyPath.map(RunRecorder.absolute), limit: request.limit?.text,
      extraVarNames: request.extraVars.map(\.name), job: settings.job, trigger: settings.trigger,
      rerunOf: settings.rerunOf, scheduledFor: settings.scheduledFor,
      hostsTotal: shard == nil ? hosts.count : plan.runTargets,
      adHocCommand: request.adHocCommand.map(\.recorded))
    if let shard {
      guard let history, history.isShared else {
        throw RunFailure(
          "--shard needs a shared history: \(history.map { "the run history \($0.path) is a SQLite file" } ?? "this run is not recorded"); expected --history postgresql://… (or SIXTY_HISTORY) that every shard uses.",
          status: .badInput)
      }
      let derived = request.runKey == nil
      let key =
        request.runKey
        ?? ShardRun.derivedKey(
          request: request, plan: plan, playbookDigest: playbookDigest, shards: shard.count)
      do {
        runID = try history.joinShard(
          new, join: ShardJoin(key: key, shard: shard.index, count: shard.count, derived: derived))
      } catch {
        throw RunFailure("shard \(shard) did not start: \(error.description)", status: .badInput)
      }
      if let runID {
        say("run \(runID) (run id '\(key)'), shard \(shard), recorded in \(history.path)")
        startHeartbeat(runID: runID, history: history)
      }
      return
    }
    runID = attempt("recording the run") { history throws(HistoryError) in
      try history.begin(
        NewRun(
          playbook: request.playbookPath.map(RunRecorder.absolute) ?? request.playbookLabel,
          playbookSHA256: playbookDigest,
          inventory: plan.inventoryPath.map(RunRecorder.absolute),
          policy: plan.policyPath.map(RunRecorder.absolute), limit: request.limit?.text,
          extraVarNames: request.extraVars.map(\.name), job: settings.job, trigger: settings.trigger,
          rerunOf: settings.rerunOf, scheduledFor: settings.scheduledFor, hostsTotal: hosts.count,
          adHocCommand: request.adHocCommand.map(\.recorded)))
    }
    if let runID, let history {
      say("run \(runID) recorded in \(history.path)")
      if history.isShared { startHeartbeat(runID: runID, history: history) }
    }
  }

  /// `path` from the working directory, with `.` and `..` resolved, so a rerun from elsewhere
  /// finds it.
  static func absolute(_ path: String) -> String {
    URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
      .standardizedFileURL.path
  }

  /// Takes the host locks for every host the plan may touch, waiting or refusing per policy.
  /// - Throws: `RunFailure` `.refused` when a host stays busy.
  /// - Parameter cancelled: polled while waiting; true ends the wait with exit 4 (a signal).
  func lockHosts(plan: Plan, cancelled: @escaping () -> Bool = { false }) async throws {
    guard let runID else { return }
    var keys: [HostLockKey] = []
    var seen = Set<HostLockKey>()
    for play in plan.plays {
      for host in play.hosts where host.batch != nil {
        let key = HostLockKey(name: host.host.name, address: host.host.address, port: host.host.port)
        if seen.insert(key).inserted { keys.append(key) }
      }
    }
    guard !keys.isEmpty else { return }
    let refuse = plan.plays.contains { $0.policy.hostLock == .refuse }
    let timeout = plan.plays.map(\.policy.lockTimeout).min() ?? .minutes(10)
    let wait = refuse ? 0 : Double(timeout.milliseconds) / 1000
    let console = self.console
    enum Waited: Sendable {
      case locked(LockHolder??)
      case tick
    }
    // The wait runs in a child task, cancelled as soon as `cancelled` (checked every 0.1 s) says so.
    let holder: LockHolder?? = await withTaskGroup(of: Waited.self) { group in
      group.addTask { [keys] in
        .locked(
          await self.attempt("taking host locks") { history async throws(HistoryError) in
            try await history.lock(runID: runID, shard: self.shard?.index, hosts: keys, wait: wait) {
              holder in
              console.handle(
                .line(
                  "sixty: waiting up to \(timeout) for host \(holder.host), which \(holder) is working on (policy host_lock: wait)."
                ))
            }
          })
      }
      group.addTask { .tick }
      while let next = await group.next() {
        guard case .locked(let holder) = next else {
          if cancelled() {
            group.cancelAll()
            continue
          }
          group.addTask {
            try? await Task.sleep(for: .milliseconds(100))
            return .tick
          }
          continue
        }
        group.cancelAll()
        return holder
      }
      return nil
    }
    guard let holder = holder ?? nil else { return }
    if cancelled() {
      let message =
        "interrupted while waiting for host \(holder.host), which \(holder) is working on; nothing ran."
      finish(status: .aborted, exitCode: 4, message: message)
      throw RunFailure(message, status: .aborted)
    }
    let message =
      refuse
      ? "the host \(holder.host) is busy: \(holder) is working on it, and the policy says host_lock: refuse."
      : "the host \(holder.host) is still busy after waiting \(timeout) (timeouts.lock): \(holder) is working on it."
    finish(status: .refused, exitCode: 3, message: message)
    throw RunFailure(message, status: .refused)
  }

  /// Stores the results of one play's hosts.
  /// Records how a play ended and what happened on each of its hosts (each task's output cut
  /// to its last 4 KB).
  func record(
    play: PlayPlan, position: Int, concurrency: Int, records: [HostRecord], result: RunResult
  ) {
    guard let runID else { return }
    let (outcome, reason) = RunSession.outcomeName(result.outcome)
    attempt("recording host results") { history throws(HistoryError) in
      try history.record(
        runID: runID,
        play: PlayRecord(
          position: position, name: play.name, outcome: outcome, reason: reason,
          keyTTL: play.policy.keyTTL.seconds,
          concurrency: concurrency))
      var records = records
      if let shard { for index in records.indices { records[index].shard = shard.index } }
      try history.record(runID: runID, hosts: records)
    }
  }

  /// The run-wide count of failed hosts of play `position`, for a shard: nil for a run that is not
  /// sharded (or not recorded).
  func sharedFailures(play position: Int) -> ShardFailureCounter? {
    guard let shard, let runID = currentRunID, let history = usable else { return nil }
    let console = self.console
    return ShardFailureCounter(
      history: history, runID: runID, play: position, shards: shard.count,
      warn: { console.handle(.line($0)) })
  }

  /// The run's id in the history while it runs.
  var currentRunID: Int64? { lock.withLock { runID } }

  /// Records the fingerprint of the key the run pushes.
  func record(keyFingerprint: String) {
    guard let runID else { return }
    attempt("recording the key fingerprint") { history throws(HistoryError) in
      try history.setKeyFingerprint(runID: runID, keyFingerprint)
    }
  }

  /// Records the run's end, once: a signal handler and the main flow may both get here.
  func finish(status: RunStatus, exitCode: Int32, message: String?) {
    var status = status
    var message = message
    if DaemonParent.died && status != .succeeded {
      status = .interrupted
      message =
        "the jobs daemon that started it stopped (its process died); " + (message ?? "the run was stopped")
    }
    // Later writes (there should be none) are not made for a finished run.
    let id: Int64? = lock.withLock {
      defer { runID = nil }
      return runID
    }
    lock.withLock {
      heartbeat?.cancel()
      heartbeat = nil
    }
    guard let id else { return }
    attempt("finishing the run record") { history throws(HistoryError) in
      if let shard {
        try history.finish(id: id, shard: shard.index, status: status, exitCode: exitCode, message: message)
      } else {
        try history.finish(id: id, status: status, exitCode: exitCode, message: message)
      }
    }
  }

  func startHeartbeat(runID: Int64, history: History) {
    let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
    let interval = history.heartbeatInterval
    let shard = self.shard?.index
    timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(100))
    timer.setEventHandler { [weak self] in
      do {
        if let shard {
          try history.heartbeat(runID: runID, shard: shard)
        } else {
          try history.heartbeat(runID: runID)
        }
      } catch {
        // Transient: the next beat tries again; a long outage lets other runners take the locks.
        self?.say("sixty: warning: \(error) (while sending the run's heartbeat).")
      }
    }
    lock.withLock { heartbeat = timer }
    timer.resume()
  }
}
