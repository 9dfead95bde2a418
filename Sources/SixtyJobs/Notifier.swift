import Foundation
import InstanceConnect
import Logging
import SixtyCalendar
import SixtyCore
import SixtyHistory
import SixtyProcess
import SixtyReport

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Sends a job's notifications when one of its runs ends: JSON webhooks (with bounded retries)
/// and local commands that read the run summary on standard input. A failed notification is
/// logged and recorded in the history; it never changes the run's outcome.
public final class Notifier: Sendable {
  /// Writes a run as a JSON object: the run and the hosts given (those that did not succeed).
  public typealias RunEncoder =
    @Sendable (_ run: RunRecord, _ hosts: [HostRecord], _ writer: inout JSONWriter) ->
    Void

  let history: History
  let logger: Logger
  let transport: any HTTPTransport
  let attempts: Int
  let baseDelay: TimeInterval
  let commandTimeout: TimeInterval
  let version: String
  let encodeRun: RunEncoder?

  /// - Parameters:
  ///   - version: Sixty's version, for webhooks' User-Agent.
  ///   - encodeRun: the run's JSON in the summary; nil for the one encoding of a run
  ///     (`RunDocument`, as `--report` and `sixty runs show` write it).
  public init(
    history: History, logger: Logger, version: String, encodeRun: RunEncoder? = nil,
    transport: any HTTPTransport = URLSessionTransport(timeout: 10), attempts: Int = 4,
    baseDelay: TimeInterval = 1,
    commandTimeout: TimeInterval = 60
  ) {
    self.version = version
    self.encodeRun = encodeRun
    self.history = history
    self.logger = logger
    self.transport = transport
    self.attempts = attempts
    self.baseDelay = baseDelay
    self.commandTimeout = commandTimeout
  }

  public func notify(job: Job, run: RunRecord) async {
    let succeeded = run.status == .succeeded
    let due = job.notifications.filter { $0.applies(succeeded: succeeded) }
    guard !due.isEmpty else { return }
    let summary = summary(job: job, run: run)
    for notification in due {
      var record: NotificationRecord
      if let command = notification.command {
        record = await runCommand(command, summary: summary, job: job, run: run)
      } else {
        record = await post(notification, summary: summary, job: job, run: run)
      }
      record.runID = run.id
      record.job = job.name
      let metadata: Logger.Metadata = [
        "job": .string(job.name), "run": .stringConvertible(run.id), "kind": .string(record.kind.rawValue),
        "target": .string(record.target), "attempts": .stringConvertible(record.attempts),
      ]
      if record.outcome == .sent {
        logger.info("notification sent", metadata: metadata)
      } else {
        logger.error(
          "notification failed", metadata: metadata.merging(["error": .string(record.error ?? "")]) { $1 })
      }
      do {
        try history.recordNotification(record)
      } catch {
        logger.error("cannot record the notification", metadata: ["error": .string(error.description)])
      }
    }
  }

  /// The run summary sent to webhooks and commands: the run and its hosts that did not succeed.
  func summary(job: Job, run: RunRecord) -> [UInt8] {
    let hosts = ((try? history.hosts(runID: run.id)) ?? []).filter(\.didNotSucceed)
    var w = JSONWriter()
    w.beginObject()
    w.field("event", "run.finished")
    w.field("job", job.name)
    w.key("run")
    if let encodeRun {
      encodeRun(run, hosts, &w)
    } else {
      RunDocument.write(run: run, plays: (try? history.plays(runID: run.id)) ?? [], hosts: hosts, to: &w)
    }
    w.endObject()
    return w.bytes + [UInt8(ascii: "\n")]
  }

  /// Where a webhook goes, for logs and records: scheme, host and port only (paths and queries of
  /// webhook URLs often carry tokens).
  static func redacted(_ url: URL, env: String?) -> String {
    var text = "\(url.scheme ?? "http")://\(url.host ?? "?")"
    if let port = url.port { text += ":\(port)" }
    if url.path.count > 1 || url.query != nil { text += "/…" }
    if let env { text += " (from $\(env))" }
    return text
  }

  func post(_ notification: Job.Notification, summary: [UInt8], job: Job, run: RunRecord) async
    -> NotificationRecord
  {
    var text = notification.webhook
    if let env = notification.webhookEnv {
      text = ProcessInfo.processInfo.environment[env]
      guard let text, !text.isEmpty else {
        return NotificationRecord(
          runID: run.id, job: job.name, kind: .webhook, target: "$\(env)", outcome: .failed, attempts: 0,
          error: "the environment variable \(env) is not set, so there is no webhook URL")
      }
    }
    guard let text, let url = URL(string: text), url.scheme == "http" || url.scheme == "https",
      url.host != nil
    else {
      return NotificationRecord(
        runID: run.id, job: job.name, kind: .webhook,
        target: notification.webhookEnv.map { "$\($0)" } ?? "?",
        outcome: .failed, attempts: 0, error: "the webhook URL is not an http(s) URL")
    }
    let target = Self.redacted(url, env: notification.webhookEnv)
    let request = HTTPRequest(
      url: url, method: "POST",
      headers: [
        ("Content-Type", "application/json"), ("User-Agent", "sixty/\(version)"),
        ("X-Sixty-Event", "run.finished"),
      ], body: summary)
    var lastError = ""
    var made = 0
    for attempt in 1...attempts {
      made = attempt
      do {
        let response = try await transport.send(request)
        if (200..<300).contains(response.status) {
          return NotificationRecord(
            runID: run.id, job: job.name, kind: .webhook, target: target, outcome: .sent, attempts: attempt,
            error: nil)
        }
        lastError = "the webhook answered HTTP \(response.status)"
        // Other client errors will not get better by retrying.
        if (400..<500).contains(response.status) && response.status != 408 && response.status != 429 { break }
      } catch {
        lastError = "the webhook could not be reached: \(error.localizedDescription)"
      }
      if attempt < attempts {
        // Exponential backoff with full jitter.
        let ceiling = baseDelay * pow(2, Double(attempt - 1))
        try? await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0.5...1.0) * ceiling * 1000)))
      }
    }
    return NotificationRecord(
      runID: run.id, job: job.name, kind: .webhook, target: target, outcome: .failed, attempts: made,
      error: lastError)
  }

  func runCommand(_ command: String, summary: [UInt8], job: Job, run: RunRecord) async -> NotificationRecord {
    let (status, output) = await Self.runShell(
      command, input: summary, timeout: commandTimeout,
      environment: [
        "SIXTY_RUN_ID": String(run.id), "SIXTY_JOB": job.name, "SIXTY_RUN_STATUS": run.status.rawValue,
      ])
    let target = "sh -c " + (command.count > 60 ? String(command.prefix(57)) + "…" : command)
    if status == 0 {
      return NotificationRecord(
        runID: run.id, job: job.name, kind: .command, target: target, outcome: .sent, attempts: 1,
        error: nil)
    }
    let why =
      status == -1
      ? "the command did not finish within \(Int(commandTimeout)) s and was killed"
      : "the command exited \(status)\(output.isEmpty ? "" : ": " + output)"
    return NotificationRecord(
      runID: run.id, job: job.name, kind: .command, target: target, outcome: .failed, attempts: 1,
      error: why)
  }

  /// Runs `/bin/sh -c command` in a process group of its own with `input` on stdin; returns its
  /// exit status (-1 when it ran out of time and its group was killed) and the last line of its
  /// output (stdout and stderr, of which the last 2000 bytes are kept).
  static func runShell(
    _ command: String, input: [UInt8], timeout: TimeInterval, environment: [String: String]
  ) async -> (Int32, String) {
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    let options = SpawnOptions(
      stdin: .bytes(input, then: nil), output: .capture(cap: 2000, keeping: .tail, mergeStderr: true),
      group: .own, defaultSignals: [SIGINT, SIGTERM, SIGHUP, SIGPIPE], environment: env)
    let outcome = FirstOutcome()
    return await withCheckedContinuation { continuation in
      outcome.continuation = continuation
      let child: ChildProcess
      do {
        child = try ChildProcess.start(["/bin/sh", "-c", command], options) { output in
          let text = String(decoding: output.stdout.bytes, as: UTF8.self)
          _ = outcome.resume((output.status, text.split(separator: "\n").last.map(String.init) ?? ""))
        }
      } catch let error as ProcessError {
        switch error.step {
        case .spawn(let program):
          _ = outcome.resume((127, "cannot start \(program): \(String(cString: strerror(error.code)))"))
        default: _ = outcome.resume((127, "pipe failed"))
        }
        return
      } catch {
        _ = outcome.resume((127, "\(error)"))
        return
      }
      let pid = child.pid
      // On a dispatch queue, not in a task: tests and runs that hold the cooperative pool's few
      // threads must not delay the kill.
      DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
        if outcome.resume((-1, "")) {
          kill(-pid, SIGKILL)
          kill(pid, SIGKILL)
        }
      }
    }
  }

  /// The first of a command's exit and its timeout.
  final class FirstOutcome: @unchecked Sendable {
    // Safe: every stored property is read and written only under `lock`.
    private let lock = NSLock()
    private var done = false
    private var pending: CheckedContinuation<(Int32, String), Never>?

    var continuation: CheckedContinuation<(Int32, String), Never>? {
      get { lock.withLock { pending } }
      set { lock.withLock { pending = newValue } }
    }

    /// True for the first outcome only, which is the one returned.
    func resume(_ outcome: (Int32, String)) -> Bool {
      let taken: CheckedContinuation<(Int32, String), Never>?? = lock.withLock {
        if done { return nil }
        done = true
        return .some(pending)
      }
      guard let taken else { return false }
      taken?.resume(returning: outcome)
      return true
    }
  }
}
