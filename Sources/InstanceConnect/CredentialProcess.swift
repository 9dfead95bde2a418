import Foundation
import SixtyCore
import SixtyProcess

/// A profile's `credential_process`: a program that prints credentials as JSON
/// (`{"Version": 1, "AccessKeyId": …, "SecretAccessKey": …, "SessionToken": …, "Expiration": …}`).
/// The command line is split like a POSIX shell's words (quotes and backslashes) and run without a
/// shell, as the AWS CLI does; its output is capped and it is stopped after `timeout` seconds. Its
/// standard error goes to Sixty's (it may say why it failed); its standard output holds secrets
/// and is never shown.
struct CredentialProcess: Sendable {
  var command: String
  var profile: String
  var timeout: TimeInterval = 60
  static let maxOutput = 64 * 1024

  func fetch() async throws(InstanceConnectError) -> AWSCredentials {
    let arguments: [String]
    do {
      arguments = try Self.split(command)
    } catch {
      throw .credentials(
        "The credential_process of the AWS profile \(SharedConfig.name(profile)) cannot be split into words: \(error.message); expected a command line such as /usr/local/bin/get-creds --account prod."
      )
    }
    guard let program = arguments.first else {
      throw .credentials("The credential_process of the AWS profile \(SharedConfig.name(profile)) is empty.")
    }
    let label = SafeText.quoted(program, limit: 80)
    let output: ChildProcess.Output
    do {
      output = try await Self.run(arguments, timeout: timeout)
    } catch let error as TimedOut {
      throw .credentials(
        "The credential_process \(label) of the AWS profile \(SharedConfig.name(profile)) did not finish within \(String(format: "%g", error.seconds)) seconds and was stopped."
      )
    } catch {
      throw .credentials(
        "The credential_process \(label) of the AWS profile \(SharedConfig.name(profile)) could not be started: \(error)."
      )
    }
    if !output.stderr.bytes.isEmpty {
      FileHandle.standardError.write(Data(output.stderr.bytes))
    }
    guard output.status == 0 else {
      throw .credentials(
        "The credential_process \(label) of the AWS profile \(SharedConfig.name(profile)) exited with status \(output.status); its messages, if any, are above."
      )
    }
    return try parse(output.stdout.bytes, dropped: output.stdout.dropped, label: label)
  }

  func parse(_ bytes: [UInt8], dropped: Int, label: String) throws(InstanceConnectError) -> AWSCredentials {
    let prefix = "The credential_process \(label) of the AWS profile \(SharedConfig.name(profile))"
    guard dropped == 0 else {
      throw .credentials(
        "\(prefix) printed more than \(Self.maxOutput / 1024) KiB; expected one JSON object.")
    }
    guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
      throw .credentials(
        "\(prefix) did not print a JSON object; expected {\"Version\": 1, \"AccessKeyId\": …}.")
    }
    guard (object["Version"] as? Int) == 1 else {
      throw .credentials("\(prefix) printed a Version other than 1; expected \"Version\": 1.")
    }
    guard let id = object["AccessKeyId"] as? String, !id.isEmpty,
      let secret = object["SecretAccessKey"] as? String, !secret.isEmpty
    else {
      throw .credentials("\(prefix) printed no AccessKeyId or SecretAccessKey.")
    }
    var expiration: Date?
    if let text = object["Expiration"] as? String {
      guard let date = AWSTime.parse(text) else {
        throw .credentials(
          "\(prefix) printed an Expiration \(SafeText.quoted(text, limit: 40)) that is not an ISO 8601 time.")
      }
      expiration = date
    }
    let token = (object["SessionToken"] as? String).flatMap { $0.isEmpty ? nil : $0 }
    return AWSCredentials(
      accessKeyID: id, secretAccessKey: secret, sessionToken: token,
      source: "credential_process (profile \(profile))", expiration: expiration)
  }

  struct TimedOut: Error { var seconds: TimeInterval }

  /// Runs the program with capped output and a deadline, without blocking a thread of the
  /// cooperative pool: the exit is collected by `ChildProcess`'s watcher, the deadline by a timer.
  static func run(_ arguments: [String], timeout: TimeInterval) async throws -> ChildProcess.Output {
    let box = OutputBox()
    return try await withCheckedThrowingContinuation { continuation in
      let child: ChildProcess
      do {
        child = try ChildProcess.start(
          arguments, SpawnOptions(output: .capture(cap: maxOutput, keeping: .head))
        ) { output in
          if box.finish() { continuation.resume(returning: output) }
        }
      } catch {
        if box.finish() { continuation.resume(throwing: error) }
        return
      }
      // The deadline is a dispatch timer, not a task: it fires even while the cooperative pool is
      // busy.
      let deadline = DispatchWorkItem {
        if box.finish() {
          child.terminate(SIGKILL)
          continuation.resume(throwing: TimedOut(seconds: timeout))
        }
      }
      box.setTimer(deadline)
      DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: deadline)
    }
  }

  /// Whether the process's end or its deadline came first; the deadline is cancelled when the
  /// process ends first.
  // Sendable: `done` and `timer` are read and written only under `lock`.
  final class OutputBox: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    private var timer: DispatchWorkItem?

    /// True for the first caller only.
    func finish() -> Bool {
      let (first, timer) = lock.withLock {
        if done { return (false, nil as DispatchWorkItem?) }
        done = true
        defer { self.timer = nil }
        return (true, self.timer)
      }
      timer?.cancel()
      return first
    }

    func setTimer(_ task: DispatchWorkItem) {
      let cancel = lock.withLock {
        if done { return true }
        timer = task
        return false
      }
      if cancel { task.cancel() }
    }
  }

  struct SplitError: Error { var message: String }

  /// POSIX shell word splitting without expansions (Python's `shlex.split`, which the AWS CLI
  /// uses): blanks separate words; `'…'` is literal; in `"…"` a backslash escapes `"`, `\`, `$`
  /// and `` ` ``; elsewhere a backslash escapes any character.
  static func split(_ text: String) throws(SplitError) -> [String] {
    var words: [String] = []
    var current = String.UnicodeScalarView()
    var inWord = false
    var scalars = Array(text.unicodeScalars)[...]
    while let scalar = scalars.popFirst() {
      switch scalar {
      case " ", "\t", "\n", "\r":
        if inWord {
          words.append(String(current))
          current = String.UnicodeScalarView()
          inWord = false
        }
      case "'":
        inWord = true
        var closed = false
        while let next = scalars.popFirst() {
          if next == "'" {
            closed = true
            break
          }
          current.append(next)
        }
        if !closed { throw SplitError(message: "a single quote is not closed") }
      case "\"":
        inWord = true
        var closed = false
        while let next = scalars.popFirst() {
          if next == "\"" {
            closed = true
            break
          }
          if next == "\\", let escaped = scalars.first, ["\"", "\\", "$", "`", "\n"].contains(escaped) {
            scalars.removeFirst()
            if escaped != "\n" { current.append(escaped) }
            continue
          }
          current.append(next)
        }
        if !closed { throw SplitError(message: "a double quote is not closed") }
      case "\\":
        inWord = true
        guard let next = scalars.popFirst() else { throw SplitError(message: "it ends with a backslash") }
        if next != "\n" { current.append(next) }
      default:
        inWord = true
        current.append(scalar)
      }
    }
    if inWord { words.append(String(current)) }
    return words
  }
}
