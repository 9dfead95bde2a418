import Foundation
import InstanceConnect
import SixtyHistory
import SixtyPlanning
import SixtyReport
import SixtyScheduler

extension RunSession {
  /// Why the run stopped early, if it did: the last play that did not complete, or a signal
  /// before a play.
  func stopMessage(_ results: [PlayResult]) -> String? {
    var message: String?
    for played in results {
      switch played.result.outcome {
      case .completed: continue
      case .aborted(let why): message = "play '\(played.play.name)' aborted: \(why)"
      case .interrupted: message = "play '\(played.play.name)' interrupted"
      case .timedOut: message = "play '\(played.play.name)' timed out"
      }
    }
    if let name = stoppedBefore { message = "interrupted before play '\(name)' started" }
    return message
  }

  func exitStatus(_ results: [PlayResult]) -> ExitStatus {
    if stoppedBefore != nil { return .aborted }
    if results.contains(where: { $0.result.outcome != .completed }) { return .aborted }
    if results.contains(where: { $0.result.hosts.contains { $0.status != .ok } }) { return .hostsFailed }
    return .ok
  }

  /// `--report`, `--junit` and `--html`, each written if asked for; a file that cannot be
  /// written is said and does not change the exit status.
  func writeReports(
    _ results: [PlayResult], message: String?, keyFingerprint: String, runID: Int64?,
    pushes: RunReport.Pushes? = nil
  ) {
    let paths = request.reports
    guard !paths.isEmpty else { return }
    var report = runReport(results, message: message, keyFingerprint: keyFingerprint, runID: runID)
    report.pushes = pushes
    let outputs: [(path: String?, label: String, name: String, render: () -> [UInt8])] = [
      (paths.junit, "junit", "JUnit report", { Array(report.junit().utf8) }),
      (paths.json, "report", "report", { report.json() }),
      (paths.html, "html", "HTML report", { Array(report.html().utf8) }),
    ]
    for output in outputs {
      guard let path = output.path else { continue }
      do {
        try Data(output.render()).write(to: URL(fileURLWithPath: path))
        say("\(output.label): \(path)")
      } catch {
        say("sixty: error: cannot write the \(output.name) \(path): \(error.localizedDescription)")
      }
    }
  }

  /// The report of the run as it ends, for `--report`, `--junit` and `--html`: each task's
  /// output as captured.
  func runReport(_ results: [PlayResult], message: String?, keyFingerprint: String, runID: Int64?)
    -> RunReport
  {
    let code = exitStatus(results)
    let plays = results.map { played in
      let (outcome, reason) = Self.outcomeName(played.result.outcome)
      return RunReport.Play(
        name: played.play.name, outcome: outcome, reason: reason, keyTTL: played.play.policy.keyTTL.seconds,
        concurrency: min(played.play.policy.concurrency, request.forks ?? .max),
        hosts: hostRecords(played, outputTail: false))
    }
    return RunReport(
      runID: runID, playbook: request.playbookLabel, started: started.wall, finished: Date(),
      status: code.runStatus, exitCode: Int(code.rawValue), message: message,
      inventory: plan.inventoryPath.map(RunRecorder.absolute),
      policy: plan.policyPath.map(RunRecorder.absolute),
      limit: request.limit?.text, job: request.history.job, trigger: request.history.trigger,
      startedBy: NewRun.currentUser, keyFingerprint: keyFingerprint, outputIsTail: false, plays: plays)
  }

  /// The key type (and why) and the pacing of the run's pushes, for its report.
  func pushesSummary(_ keys: RunKeys, pacer: AdaptivePacer, plays: [PlayResult]) -> RunReport.Pushes {
    let summary = pacer.summary
    let first = plays.first?.play ?? plan.plays.first
    let type = first.map(keys.type(for:)) ?? keys.types.first ?? .rsa
    let reason =
      first?.policy.keyType != nil
      ? "set by the policy (push.key_type)" : keys.choice?.reason ?? "the default"
    return RunReport.Pushes(
      mode: first.map(keys.mode(for:))?.rawValue ?? keys.endpointMode.rawValue,
      keyType: type.rawValue, keyTypeReason: reason, requests: summary.requests, throttled: summary.throttled,
      lowered: summary.lowered, rate: summary.rate, lowestRate: summary.lowestRate,
      measuredRate: summary.measuredRate, ceiling: first?.policy.pushRate)
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
  func hostRecords(_ played: PlayResult, outputTail: Bool) -> [HostRecord] {
    let (play, prepared, result) = (played.play, played.execution, played.result)
    // Scheduler times are monotonic seconds.
    let wall = started.date
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
