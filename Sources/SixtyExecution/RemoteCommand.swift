import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import SixtyProcess

/// The remote side of a task: the command line the remote user's shell runs, and its stdin.
enum RemoteCommand {
  /// The command as the remote side runs it: marked by `marker`, the last word of its command
  /// line, so it can be found and stopped, and under the remote `timeout` (coreutils) when the
  /// task has a timeout, so a task that hangs ends on the host too, a second after Sixty gives up
  /// on it (where `timeout` is missing the command runs without it). The marker is the shell's
  /// `$1`, not its `$0`: the shell names itself `sh` in its messages ("sh: 1: x: not found"), so
  /// no internal name reaches the user; the command itself never reads the positional
  /// parameters (shell text runs in a `sh -c` of its own).
  static func wrapped(_ command: String, seconds: Double?, marker: String) -> String {
    let quoted = ShellQuote.quote(command) + " sh " + ShellQuote.quote(marker)
    guard let seconds, seconds > 0 else { return "exec sh -c \(quoted)" }
    let limit = Int(seconds.rounded(.up)) + 1
    return
      "if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 \(limit) sh -c \(quoted); else exec sh -c \(quoted); fi"
  }

  /// The remote command line for a task (run by the remote user's shell), and its stdin.
  ///
  /// A task with `env:` sends its variables over stdin, as `export` lines read by `sh -s` before
  /// the command itself, never on a command line: `ps` on the runner shows ssh's arguments, and
  /// `ps` on the host shows the remote shell's.
  static func command(_ task: RenderedTask, become: String?) -> (
    command: String, stdin: ChildProcess.Input
  ) {
    if !task.env.isEmpty, let viaStdin = environmentOverStdin(task, become: become) { return viaStdin }
    var stdin = ChildProcess.Input.none
    var body: String
    switch task.action {
    case .command(let argv): body = argv.map(ShellQuote.quote).joined(separator: " ")
    case .shell(let text): body = "sh -c " + ShellQuote.quote(text)
    case .script(_, let resolved):
      stdin = .file(resolved)
      body = "sh -s"
    case .upload(_, let resolved, let destination, let mode):
      stdin = .file(resolved)
      body = "cat > " + ShellQuote.quote(destination)
      if let mode { body += " && chmod " + ShellQuote.quote(mode) + " " + ShellQuote.quote(destination) }
      body = "sh -c " + ShellQuote.quote(body)
    }
    if let cwd = task.cwd { body = "cd " + ShellQuote.quote(cwd) + " && " + body }
    if let become {
      body = "sudo -n -u " + ShellQuote.quote(become) + " -- sh -c " + ShellQuote.quote(body)
    } else if task.cwd != nil {
      body = "sh -c " + ShellQuote.quote(body)
    }
    return (body, stdin)
  }

  /// A task with environment variables: `sh -s` (under sudo with `become`) reads `cd`, one
  /// `export NAME='value'` line per variable and then the task from stdin; a script follows its
  /// exports on the same stdin. Nil for uploads, whose `cat` has no use for them.
  static func environmentOverStdin(_ task: RenderedTask, become: String?) -> (
    command: String, stdin: ChildProcess.Input
  )? {
    var preamble = ""
    if let cwd = task.cwd { preamble += "cd " + ShellQuote.quote(cwd) + " || exit 1\n" }
    for entry in task.env {
      let bytes = Array(entry.utf8)
      guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { continue }
      let name = String(decoding: bytes[..<equals], as: UTF8.self)
      let value = String(decoding: bytes[(equals + 1)...], as: UTF8.self)
      guard SafeText.isEnvironmentName(name) else { continue }
      preamble += "export " + name + "=" + ShellQuote.quote(value) + "\n"
    }
    let file: String?
    switch task.action {
    case .command(let argv):
      preamble += "exec " + argv.map(ShellQuote.quote).joined(separator: " ") + "\n"
      file = nil
    case .shell(let text):
      preamble += "exec sh -c " + ShellQuote.quote(text) + "\n"
      file = nil
    case .script(_, let resolved): file = resolved
    case .upload: return nil
    }
    let shell = become.map { "sudo -n -u " + ShellQuote.quote($0) + " -- sh -s" } ?? "sh -s"
    return (shell, .bytes(Array(preamble.utf8), then: file))
  }
}
