import Foundation
import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import SixtyPolicy
import SixtyProcess
import SixtyScheduler

/// Runs each host's work with the system `ssh`: one ControlMaster connection per host, opened
/// with the run's key, every task multiplexed over it. A host with a single task runs it as
/// the master's own session instead (a fused master).
// Sendable: the settings are constants; `connections`, `live`, `running` and `fused` are behind
// `lock`; `sockets`, `onCapture`, `onCommand` and `fuseSingleTasks` are set before the executor
// is shared.
public final class SSHExecutor: HostExecutor, @unchecked Sendable {
  let targets: [String: ExecutionTarget]
  let index: [String: Int]
  let runDirectory: String
  let commandLine: SSHCommandLine
  let outputCap: Int
  let stopper = RemoteStopper()
  /// Called for every finished task (on a background thread).
  public var onCapture: (@Sendable (TaskCapture) -> Void)?
  /// Called with every ssh command line the executor runs, as shell words (for `-vv`); the key
  /// appears as its path, never its contents.
  public var onCommand: (@Sendable (String) -> Void)?
  /// Run a host's only task as its master's own session (no second ssh process per host).
  public var fuseSingleTasks = true
  /// The built-in client, for the hosts it takes (see `useBuiltinClient`); set before sharing.
  var builtin: BuiltinTransport?
  /// Watches for the masters' control sockets (assigned once, in `init`).
  private(set) var sockets: ControlSocketWatcher!

  /// A host's current master connection.
  struct Master {
    var state: MasterConnection
    let attempt: ConnectAttempt
    let child: ChildProcess
  }
  /// A running task, in `running`.
  struct TaskKey: Hashable {
    var host: String
    var task: Int
  }

  let lock = NSLock()
  /// The current master connection attempt of each host (until its process exits).
  var connections: [String: Master] = [:]
  /// Every master process that has not exited yet, by pid (a host's earlier masters included).
  var live: [pid_t: ChildProcess] = [:]
  /// The local ssh client of each running task (a fused host's master, once authenticated).
  var running: [TaskKey: ChildProcess] = [:]
  /// Hosts whose only task runs as their master connection's own session, by host.
  var fused: [String: FusedTask] = [:]
  /// Entered for every master process, left when it has exited.
  let closing = DispatchGroup()
  let terminations = DispatchQueue(label: "sixty.ssh.terminate")

  public init(
    targets: [String: ExecutionTarget], runDirectory: String, keyPath: String, hostKeyPolicy: HostKeyPolicy,
    connectTimeout: Int = 10, outputCap: Int = 1 << 20, ssh: String = "ssh", extraOptions: [String] = [],
    knownHostsFile: String? = nil, certificates: Bool = false
  ) {
    self.targets = targets
    var index: [String: Int] = [:]
    for (i, name) in targets.keys.sorted().enumerated() { index[name] = i }
    self.index = index
    self.runDirectory = runDirectory
    self.outputCap = outputCap
    // Where `accept-new` records and checks host keys: one file that outlives runs (trust on
    // first use), shared with `sixty ssh`.
    var commandLine = SSHCommandLine(
      ssh: ssh, keyPath: keyPath, hostKeyPolicy: hostKeyPolicy,
      knownHostsFile: knownHostsFile ?? runDirectory + "/known_hosts", connectTimeout: connectTimeout,
      extraOptions: extraOptions)
    if certificates {
      for (name, position) in index { commandLine.certificates[name] = "\(runDirectory)/cert\(position).pub" }
    }
    self.commandLine = commandLine
    sockets = ControlSocketWatcher(directory: runDirectory) { [weak self] in self?.socketsAppeared($0) }
  }

  /// Where the certificate of `host` goes in certificate mode (nil otherwise): ssh reads it as
  /// `CertificateFile` beside the run's key.
  public func certificatePath(_ host: String) -> String? { commandLine.certificates[host] }

  func controlPath(_ host: String) -> String {
    // Short names: a socket path must fit in 108 bytes.
    "\(runDirectory)/c\(index[host] ?? 0)"
  }

  func logPath(_ host: String) -> String { runDirectory + "/ssh\(index[host] ?? 0).log" }

  /// A command line as a person would type it: each argument a shell word.
  public static func display(_ arguments: [String]) -> String {
    arguments.map(ShellQuote.quote).joined(separator: " ")
  }

  /// Tells `onCommand` about a command line about to run.
  func announce(_ arguments: [String]) { onCommand?(Self.display(arguments)) }

  /// ssh's options for trust on first use with `file`: a new host's key is recorded, a changed
  /// one refused. `sixty ssh` passes the same.
  public static func trustOnFirstUse(_ file: String) -> [String] { SSHCommandLine.trustOnFirstUse(file) }

  /// Creates the known_hosts file's folder (0700) when it is missing, so ssh can record keys.
  public static func prepareKnownHostsFile(_ path: String) throws {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    do {
      try FileManager.default.createDirectory(
        atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch {
      throw ExecutionError(
        "cannot create \(folder) for the known_hosts file \(path): \(error.localizedDescription)")
    }
  }

  public func connect(host: ScheduledHost, completion: @escaping @Sendable (ConnectOutcome) -> Void) {
    guard let target = targets[host.name] else {
      completion(.failed("no connection details for \(host.name)"))
      return
    }
    guard target.address.utf8.first != UInt8(ascii: "-"), target.user.utf8.first != UInt8(ascii: "-"),
      target.destination.utf8.first != UInt8(ascii: "-")
    else {
      completion(.failed("the address or user of \(host.name) starts with '-'; refusing to pass it to ssh"))
      return
    }
    if let builtin = builtinTakes(host.name, target) {
      builtinConnect(builtin, host: host, target: target, completion: completion)
      return
    }
    openSSHConnect(host: host, target: target, completion: completion)
  }

  /// Connects with the system `ssh`: a master process whose control socket appearing means it
  /// authenticated.
  func openSSHConnect(
    host: ScheduledHost, target: ExecutionTarget, completion: @escaping @Sendable (ConnectOutcome) -> Void
  ) {
    // Watched before the first master starts, so that no socket can appear unseen.
    sockets.prepare()
    // A socket left by a master that died would stop a new master from listening.
    let socket = controlPath(host.name)
    unlink(socket)
    // The master stays our child (no -f, so no `-O check` to learn its pid and no `-O exit` to
    // stop it): ssh creates the control socket only once it has authenticated, so the socket
    // appearing is the authentication signal, and the process exiting before that is a failure.
    let log = logPath(host.name)
    // A host with one task (no retries) runs it as the master's own session: one ssh process and
    // one round of session set-up fewer. Its output is the master's.
    let invocation =
      fuseSingleTasks && host.tasks.count == 1 && host.tasks[0].retries == 0
      ? remoteInvocation(host: host, task: 0, target: target) : nil
    let arguments: [String]
    if let invocation {
      truncate(log, 0)
      arguments = commandLine.fusedMaster(target, controlPath: socket, log: log, command: invocation.command)
    } else {
      arguments = commandLine.master(target, controlPath: socket, log: log)
    }
    announce(arguments)
    let fusedTask = invocation.map { _ in FusedTask() }
    let attempt = ConnectAttempt(completion: completion)
    do {
      // The lock is held across the start, so the exit's removal comes after the insert.
      try lock.withLock {
        closing.enter()
        let child: ChildProcess
        do {
          child = try ChildProcess.run(
            arguments, stdin: invocation?.stdin ?? .none, cap: fusedTask == nil ? 0 : outputCap,
            capture: fusedTask != nil
          ) { [self] output in
            masterExited(host, target: target, attempt: attempt, fusedTask: fusedTask, output: output)
            closing.leave()
          }
        } catch {
          closing.leave()
          throw error
        }
        attempt.child = child
        live[child.pid] = child
        connections[host.name] = Master(
          state: MasterConnection(fused: fusedTask != nil), attempt: attempt, child: child)
        // A fused task is in `running` only once authenticated (see `socketsAppeared`): stopping
        // a task goes through the master's socket, which a master still connecting does not have.
        if let fusedTask { fused[host.name] = fusedTask }
        sockets.watch(host: host.name, socket: socket)
      }
    } catch {
      completion(.failed("\(error)"))
    }
  }

  /// Control sockets appeared: those hosts' masters have authenticated.
  func socketsAppeared(_ hosts: [String]) {
    let attempts: [ConnectAttempt] = lock.withLock {
      hosts.compactMap { host in
        guard var master = connections[host], master.state.socketSeen() else { return nil }
        connections[host] = master
        if master.state.fused, let fusedTask = fused[host] {
          fusedTask.markStarted()
          running[TaskKey(host: host, task: 0)] = master.child
        }
        return master.attempt
      }
    }
    for attempt in attempts where attempt.finish() { attempt.completion(.authenticated) }
  }

  /// The remote command line of a task, wrapped (see `RemoteCommand.wrapped`), and its stdin.
  func remoteInvocation(host: ScheduledHost, task: Int, target: ExecutionTarget) -> (
    command: String, stdin: ChildProcess.Input
  )? {
    guard task < target.tasks.count, let rendered = target.tasks[task].rendered else { return nil }
    let (command, stdin) = RemoteCommand.command(rendered, become: target.tasks[task].become)
    let timeout = task < host.tasks.count ? host.tasks[task].timeout : nil
    let marker = stopper.taskMarker(host: index[host.name] ?? 0, task: task)
    return (RemoteCommand.wrapped(command, seconds: timeout, marker: marker), stdin)
  }

  public func run(host: ScheduledHost, task: Int, completion: @escaping @Sendable (TaskOutcome) -> Void) {
    if builtinRun(host: host, task: task, completion: completion) { return }
    if task == 0, let fusedTask = lock.withLock({ fused[host.name] }) {
      if let (outcome, capture) = fusedTask.attach(completion) {
        forgetFused(host.name, fusedTask)
        onCapture?(capture)
        completion(outcome)
      }
      return
    }
    guard let target = targets[host.name],
      let (command, stdin) = remoteInvocation(host: host, task: task, target: target)
    else {
      completion(.failed("the task has nothing to run"))
      return
    }
    let arguments = commandLine.task(target, controlPath: controlPath(host.name), command: command)
    announce(arguments)
    let key = TaskKey(host: host.name, task: task)
    let started = Date()
    do {
      // The lock is held across the start, so the exit's removal comes after the insert.
      try lock.withLock {
        running[key] = try ChildProcess.run(arguments, stdin: stdin, cap: outputCap) { [self] output in
          lock.withLock { _ = running.removeValue(forKey: key) }
          onCapture?(
            TaskCapture(
              host: host.name, task: task, status: output.status, stdout: output.stdout,
              stderr: output.stderr, started: started, ended: Date()))
          let outcome = SSHLog.outcome(status: output.status, okCodes: target.tasks[task].okCodes)
          guard output.status == 255 else { return completion(outcome) }
          checkMaster(host.name, target) { alive in
            completion(alive ? outcome : .connectionLost("the connection to \(host.name) was lost"))
          }
        }
      }
    } catch {
      completion(.failed("\(error)"))
    }
  }

  /// Whether the host's master connection still answers (`ssh -O check`), told to `answer`.
  func checkMaster(_ host: String, _ target: ExecutionTarget, _ answer: @escaping @Sendable (Bool) -> Void) {
    let arguments = commandLine.check(target, controlPath: controlPath(host))
    if (try? ChildProcess.run(arguments, cap: 4096, completion: { answer($0.status == 0) })) == nil {
      answer(false)
    }
  }
}
