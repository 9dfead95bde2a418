import Foundation
import SixtyRun
import InstanceConnect
import Logging
import SixtyCalendar
import SixtyCore
import SixtyHistory
import SixtyReport

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Sends a job's notifications when one of its runs ends: JSON webhooks (with bounded retries)
/// and local commands that read the run summary on standard input. A failed notification is
/// logged and recorded in the history; it never changes the run's outcome.
final class Notifier: Sendable {
  let history: History
  let logger: Logger
  let transport: any HTTPTransport
  let attempts: Int
  let baseDelay: TimeInterval
  let commandTimeout: TimeInterval

  init(
    history: History, logger: Logger, transport: any HTTPTransport = URLSessionTransport(timeout: 10),
    attempts: Int = 4, baseDelay: TimeInterval = 1, commandTimeout: TimeInterval = 60
  ) {
    self.history = history
    self.logger = logger
    self.transport = transport
    self.attempts = attempts
    self.baseDelay = baseDelay
    self.commandTimeout = commandTimeout
  }

  func notify(job: Job, run: RunRecord) async {
    let succeeded = run.status == .succeeded
    let due = job.notifications.filter { $0.applies(succeeded: succeeded) }
    guard !due.isEmpty else { return }
    let summary = Self.summary(job: job, run: run, history: history)
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
  static func summary(job: Job, run: RunRecord, history: History) -> [UInt8] {
    let hosts = ((try? history.hosts(runID: run.id)) ?? []).filter(\.didNotSucceed)
    var w = JSONWriter()
    w.beginObject()
    w.field("event", "run.finished")
    w.field("job", job.name)
    w.key("run")
    RunDocument.write(run: run, plays: (try? history.plays(runID: run.id)) ?? [], hosts: hosts, to: &w)
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
        ("Content-Type", "application/json"), ("User-Agent", "sixty/\(SixtyCommand.configuration.version)"),
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
    let timeout = commandTimeout
    return await withCheckedContinuation { continuation in
      Thread.detachNewThread {
        let (status, output) = Self.runShell(
          command, input: summary, timeout: timeout,
          environment: [
            "SIXTY_RUN_ID": String(run.id), "SIXTY_JOB": job.name, "SIXTY_RUN_STATUS": run.status.rawValue,
          ])
        let target = "sh -c " + (command.count > 60 ? String(command.prefix(57)) + "…" : command)
        if status == 0 {
          continuation.resume(
            returning: NotificationRecord(
              runID: run.id, job: job.name, kind: .command, target: target, outcome: .sent, attempts: 1,
              error: nil))
        } else {
          let why =
            status == -1
            ? "the command did not finish within \(Int(timeout)) s and was killed"
            : "the command exited \(status)\(output.isEmpty ? "" : ": " + output)"
          continuation.resume(
            returning: NotificationRecord(
              runID: run.id, job: job.name, kind: .command, target: target, outcome: .failed, attempts: 1,
              error: why))
        }
      }
    }
  }

  /// Runs `/bin/sh -c command` with `input` on stdin; returns its exit status (-1 on timeout)
  /// and the last line of its output.
  static func runShell(
    _ command: String, input: [UInt8], timeout: TimeInterval, environment: [String: String]
  )
    -> (Int32, String)
  {
    var inPipe: [Int32] = [0, 0]
    var outPipe: [Int32] = [0, 0]
    guard pipe(&inPipe) == 0 else { return (127, "pipe failed") }
    guard pipe(&outPipe) == 0 else {
      close(inPipe[0])
      close(inPipe[1])
      return (127, "pipe failed")
    }
    for fd in inPipe + outPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    let pid: pid_t
    do {
      pid = try DaemonChild.spawn(
        ["/bin/sh", "-c", command], stdin: inPipe[0], stdout: outPipe[1], stderr: outPipe[1], environment: env
      )
    } catch {
      for fd in inPipe + outPipe { close(fd) }
      return (127, "\(error)")
    }
    close(inPipe[0])
    close(outPipe[1])
    let writer = inPipe[1]
    Thread.detachNewThread {
      signal(SIGPIPE, SIG_IGN)
      input.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
          let n = write(writer, buffer.baseAddress! + offset, buffer.count - offset)
          if n <= 0 {
            if n < 0 && errno == EINTR { continue }
            break
          }
          offset += n
        }
      }
      close(writer)
    }
    let reader = outPipe[0]
    let collected = NSLock()
    nonisolated(unsafe) var output = CappedText(limit: 2000)
    let drained = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      var buffer = [UInt8](repeating: 0, count: 4096)
      while true {
        let n = read(reader, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        collected.withLock { output.append(buffer[0..<n]) }
      }
      close(reader)
      drained.signal()
    }
    let deadline = Date().addingTimeInterval(timeout)
    var status: Int32 = 0
    while true {
      let result = waitpid(pid, &status, WNOHANG)
      if result == pid { break }
      if result < 0 && errno != EINTR { return (127, "waitpid failed") }
      if Date() >= deadline {
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        _ = DaemonChild.wait(pid)
        _ = drained.wait(timeout: .now() + 2)
        return (-1, "")
      }
      usleep(20_000)
    }
    _ = drained.wait(timeout: .now() + 2)
    let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let text = collected.withLock { output.text }
    let last = text.split(separator: "\n").last.map(String.init) ?? ""
    return (code, last)
  }
}

/// Keeps the last `limit` bytes appended.
struct CappedText {
  let limit: Int
  var bytes: [UInt8] = []
  init(limit: Int) { self.limit = limit }
  mutating func append(_ chunk: ArraySlice<UInt8>) {
    bytes.append(contentsOf: chunk)
    if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
  }
  var text: String { String(decoding: bytes, as: UTF8.self) }
}
