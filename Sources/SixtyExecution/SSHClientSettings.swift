import Foundation
import SixtyCore
import SixtyPolicy
import SixtyProcess

/// The operator's ssh settings for every host of a run (`-F`, `-J`, `-o`, `-u` of `sixty run`
/// and `sixty exec`), as OpenSSH users pass them to ssh.
public struct SSHClientSettings: Sendable, Codable, Equatable {
  /// `-o Key=Value`, in order.
  public var options: [String] = []
  /// `-J DESTINATION`: jump host(s).
  public var jump: String?
  /// `-F FILE`: the ssh configuration file.
  public var configFile: String?
  /// `-u USER`: the remote user for every host (over the inventory's).
  public var user: String?

  public init(options: [String] = [], jump: String? = nil, configFile: String? = nil, user: String? = nil) {
    self.options = options
    self.jump = jump
    self.configFile = configFile
    self.user = user
  }

  /// The arguments that go on every ssh Sixty runs (masters, tasks, `ssh -G`): `-F FILE`, the
  /// jump as `-o ProxyJump=` (ssh refuses a second `-J`, and an inventory's ProxyJump must not
  /// make it fail), then each `-o`.
  public var arguments: [String] {
    var arguments: [String] = []
    if let configFile { arguments += ["-F", configFile] }
    if let jump { arguments += ["-o", "ProxyJump=" + jump] }
    for option in options { arguments += ["-o", option] }
    return arguments
  }

  /// Why these settings cannot be used, as a sentence naming the value; nil when they can.
  public var problem: String? { problem(interactive: false) }

  /// Why these settings cannot be used by a run, or by `sixty ssh` when `interactive`.
  public func problem(interactive: Bool) -> String? {
    for option in options {
      if let problem = SSHClientOption.commandLineProblem(option, interactive: interactive) {
        return "The ssh option -o \(SafeText.quoted(option)) cannot be used: \(problem)."
      }
    }
    if let jump, let problem = SSHClientOption.jumpProblem(jump) {
      return "The jump host -J \(SafeText.quoted(jump)) is not valid: \(problem)."
    }
    if let user, !SafeText.isUserName(user) {
      return
        "The user -u \(SafeText.quoted(user)) is not valid; expected up to 32 ASCII letters, digits, '.', '_', '-' or '@', not starting with '-'."
    }
    if let configFile, configFile.utf8.first == UInt8(ascii: "-") {
      return
        "The ssh configuration file -F \(SafeText.quoted(configFile)) starts with '-'; write it as ./\(configFile)."
    }
    return nil
  }
}

/// Asks ssh what it would do (`ssh -G`, with the same `-F`, `-o`, `-J` and destination as the
/// run's connections): who it logs in as when neither the inventory nor `-u` says, so the key is
/// pushed for the user ssh really uses.
public struct SSHConfigResolver: Sendable {
  let commandLine: SSHCommandLine

  public init(ssh: String = "ssh", client: SSHClientSettings = SSHClientSettings()) {
    commandLine = SSHCommandLine(
      ssh: ssh, keyPath: "", hostKeyPolicy: .strict, knownHostsFile: "", extraOptions: client.arguments)
  }

  /// The `ssh -G` command line for `target`.
  public func arguments(_ target: ExecutionTarget) -> [String] { commandLine.resolvedConfig(target) }

  /// The user ssh logs in as for `target`, from `ssh -G`; nil when ssh cannot say.
  public func user(for target: ExecutionTarget) async -> String? {
    guard
      let output = try? await ChildProcess.run(
        arguments(target), SpawnOptions(output: .capture(cap: 1 << 16))),
      output.status == 0
    else { return nil }
    return Self.user(inConfig: output.stdout.text)
  }

  /// The value of the `user` line of `ssh -G` output, when it is a valid user name.
  static func user(inConfig text: String) -> String? {
    for line in text.split(separator: "\n") where line.hasPrefix("user ") {
      let user = String(line.dropFirst(5)).trimmingCharacters(in: .whitespaces)
      return SafeText.isUserName(user) ? user : nil
    }
    return nil
  }

  /// The users ssh logs in as for the targets whose user is not set, by host, asking at most
  /// `parallel` ssh processes at once.
  public func users(for targets: [String: ExecutionTarget], parallel: Int = 8) async -> [String: String] {
    let pending = targets.filter { !$0.value.userIsSet }.sorted { $0.key < $1.key }
    var users: [String: String] = [:]
    await withTaskGroup(of: (String, String?).self) { group in
      var next = 0
      func add() {
        guard next < pending.count else { return }
        let (name, target) = pending[next]
        next += 1
        group.addTask { (name, await user(for: target)) }
      }
      for _ in 0..<parallel { add() }
      while let (name, user) = await group.next() {
        if let user { users[name] = user }
        add()
      }
    }
    return users
  }
}

extension SSHConfigResolver {
  /// Who ssh logs in as when nothing else says: the local user ($USER), else root.
  public static var localUser: String {
    ProcessInfo.processInfo.environment["USER"].flatMap { SafeText.isUserName($0) ? $0 : nil } ?? "root"
  }
}

/// `sixty ssh`'s command line, built the way a run's connections are (see `SSHCommandLine`): the
/// key with `IdentitiesOnly=yes`, then `-p`/`-l` only where set, the operator's `-F`/`-J`/`-o`,
/// the host key policy's options (the run's; after the operator's, so an explicit `-o
/// StrictHostKeyChecking` of the operator's own session wins), the host's own options and
/// `HostName`, any other ssh arguments, `--`, the destination (the inventory name, so `Host`
/// blocks match) and the command.
public enum InteractiveSSH {
  public static func arguments(
    target: ExecutionTarget, keyPath: String, client: SSHClientSettings, hostKeyPolicy: HostKeyPolicy,
    knownHostsFile: String, extra: [String], command: [String]
  ) -> [String] {
    ["-i", keyPath, "-o", "IdentitiesOnly=yes"]
      + SSHCommandLine.reach(
        target, hostKey: [],
        extra: client.arguments + SSHCommandLine.hostKeyOptions(hostKeyPolicy, knownHostsFile))
      + extra + ["--", target.destination] + command
  }
}
