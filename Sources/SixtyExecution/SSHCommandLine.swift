import SixtyPlaybook
import SixtyPolicy

/// The `ssh` command lines the executor runs, built from the run's settings alone (no I/O): the
/// master connection, a fused master (a host's only task as the master's own session), a task
/// over the master, a remote stop, and a master check.
struct SSHCommandLine: Sendable {
  var ssh = "ssh"
  var keyPath: String
  var hostKeyPolicy: HostKeyPolicy
  /// Where `accept-new` records and checks host keys.
  var knownHostsFile: String
  var connectTimeout = 10
  var extraOptions: [String] = []
  /// Certificate mode: each host's certificate file (`CertificateFile`), by host name.
  var certificates: [String: String] = [:]

  /// Options shared by the master and every task: Sixty's own, the host key policy's, the
  /// operator's (`-F`, `-J`, `-o`: `extraOptions`), the inventory's, then how to reach the host.
  /// ssh keeps the first value of an option, so none of the later ones can override an earlier.
  func base(_ target: ExecutionTarget, controlPath: String) -> [String] {
    var arguments = [ssh]
    arguments += ["-i", keyPath]
    if let name = target.name, let certificate = certificates[name] {
      arguments += ["-o", "CertificateFile=\(certificate)"]
    }
    arguments += [
      "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
      "-o", "ConnectTimeout=\(connectTimeout)", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
      "-o", "ControlPath=\(controlPath)",
    ]
    arguments += Self.reach(
      target, hostKey: Self.hostKeyOptions(hostKeyPolicy, knownHostsFile), extra: extraOptions)
    return arguments
  }

  /// `-p`, `-l` (only those the inventory or `-u` set, so ssh_config's `Port` and `User` apply
  /// otherwise), the host key options, `extra`, the host's own options and `HostName`: every
  /// option that decides where ssh connects and as whom, shared with `ssh -G` and `sixty ssh`.
  static func reach(_ target: ExecutionTarget, hostKey: [String], extra: [String]) -> [String] {
    var arguments: [String] = []
    if target.portIsSet { arguments += ["-p", String(target.port)] }
    if target.userIsSet { arguments += ["-l", target.user] }
    arguments += hostKey + extra
    for option in target.sshOptions { arguments += ["-o", option] }
    if let hostName = target.hostNameOption { arguments += ["-o", hostName] }
    return arguments
  }

  /// ssh's options for a host key policy; `accept-new` records keys in `knownHostsFile`.
  static func hostKeyOptions(_ policy: HostKeyPolicy, _ knownHostsFile: String) -> [String] {
    switch policy {
    case .acceptNew: trustOnFirstUse(knownHostsFile)
    case .strict: ["-o", "StrictHostKeyChecking=yes"]
    case .off:
      ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    }
  }

  /// `ssh -G`: the configuration ssh would use for the host (its `user` line is who it logs in as).
  func resolvedConfig(_ target: ExecutionTarget) -> [String] {
    [ssh, "-G"] + Self.reach(target, hostKey: [], extra: extraOptions) + ["--", target.destination]
  }

  /// The master of a host whose tasks are multiplexed over it: no command of its own (`-N`).
  func master(_ target: ExecutionTarget, controlPath: String, log: String) -> [String] {
    base(target, controlPath: controlPath) + [
      "-M", "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-E", log, "--", target.destination,
    ]
  }

  /// The master of a host whose only task is the master's own session. ssh keeps the first value
  /// of an option, so its `LogLevel=VERBOSE` (for its log file, not the terminal) comes before
  /// the host-key policy's `LogLevel=ERROR`; VERBOSE puts "Authenticated to" in the log.
  func fusedMaster(_ target: ExecutionTarget, controlPath: String, log: String, command: String) -> [String] {
    var arguments = base(target, controlPath: controlPath)
    arguments.insert(contentsOf: ["-o", "LogLevel=VERBOSE"], at: 1)
    return arguments + [
      "-M", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-E", log, "-T", "--", target.destination,
      command,
    ]
  }

  /// A command run over the host's master connection (a task, or a remote stop).
  func task(_ target: ExecutionTarget, controlPath: String, command: String) -> [String] {
    base(target, controlPath: controlPath) + [
      "-o", "ControlMaster=no", "-T", "--", target.destination, command,
    ]
  }

  /// SIGTERM, over the master, to the remote processes whose command line matches `pattern`.
  func remoteStop(_ target: ExecutionTarget, controlPath: String, pattern: String) -> [String] {
    task(target, controlPath: controlPath, command: "pkill -TERM -f -- " + ShellQuote.quote(pattern))
  }

  /// Asks the master whether it still answers (`ssh -O check`).
  func check(_ target: ExecutionTarget, controlPath: String) -> [String] {
    base(target, controlPath: controlPath) + ["-O", "check", "--", target.destination]
  }

  /// ssh's options for trust on first use with `file`: a new host's key is recorded, a changed
  /// one refused. `sixty ssh` passes the same.
  static func trustOnFirstUse(_ file: String) -> [String] {
    ["-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=\(sshConfigQuoted(file))"]
  }

  /// A path as one ssh_config word (UserKnownHostsFile splits on spaces unless quoted).
  static func sshConfigQuoted(_ path: String) -> String {
    path.utf8.contains(UInt8(ascii: " ")) ? "\"\(path)\"" : path
  }
}
