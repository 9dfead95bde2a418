import Foundation
import SixtyCore
import SixtyPlanning
import SixtyPlaybook
import SixtyPolicy
import SixtyProcess
import SixtyScheduler

/// Where and how to reach one host, and what to run there.
public struct ExecutionTarget: Sendable {
  public var address: String
  public var port: Int
  public var user: String
  public var tasks: [RenderedTask?]
  /// `become` per task: nil, or the user to become (root by default).
  public var become: [String?]
  public var okCodes: [[Int32]]
  /// `ssh -o` options for this host only (ProxyJump, ProxyCommand), each "Name=value".
  public var sshOptions: [String] = []

  public init(
    address: String, port: Int, user: String, tasks: [RenderedTask?], become: [String?], okCodes: [[Int32]],
    sshOptions: [String] = []
  ) {
    self.sshOptions = sshOptions
    self.address = address
    self.port = port
    self.user = user
    self.tasks = tasks
    self.become = become
    self.okCodes = okCodes
  }
}

/// What a finished task produced.
public struct TaskCapture: Sendable {
  public var host: String
  public var task: Int
  public var status: Int32
  public var stdout: CappedBuffer
  public var stderr: CappedBuffer
  public var started: Date
  public var ended: Date
}

/// Runs each host's work with the system `ssh`: one ControlMaster connection per host, opened
/// with the run's key, every task multiplexed over it. A host with a single task runs it as
/// the master's own session instead (see `fusedMaster`).
public final class SSHExecutor: HostExecutor, @unchecked Sendable {
  let targets: [String: ExecutionTarget]
  let index: [String: Int]
  let runDirectory: String
  let keyPath: String
  let hostKeyPolicy: HostKeyPolicy
  let connectTimeout: Int
  let outputCap: Int
  let ssh: String
  let extraOptions: [String]
  /// Where `accept-new` records and checks host keys: one file that outlives runs (trust on
  /// first use), shared with `sixty ssh`.
  let knownHostsFile: String
  /// Names this run's remote task processes (their `$0`), so they can be found and stopped.
  let marker = "sixty-task-" + (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
  /// Called for every finished task (on a background thread).
  public var onCapture: (@Sendable (TaskCapture) -> Void)?

  // `lock` protects `running`, `masters`, `connecting`, `watching`, `watcher`, `notifier`, `live`,
  // `stoppers` and `fused`.
  let lock = NSLock()
  var running: [String: ChildProcess] = [:]
  var masters: [String: pid_t] = [:]
  /// The ssh clients still connecting (before authentication), by host.
  var connecting: [String: ChildProcess] = [:]
  /// Control sockets to watch for, by host: they appear when the master has authenticated.
  var watching: [String: (socket: String, attempt: ConnectAttempt)] = [:]
  var watcher: DispatchSourceTimer?
  /// inotify on the run directory, where the control sockets appear; nil where it cannot be had
  /// (then `watcher` polls every 5 ms instead of every 250).
  var notifier: DispatchSourceRead?
  var notifierTried = false
  /// The poll interval alongside inotify, in milliseconds (tests lengthen it to see inotify work).
  var notifiedPollInterval = 250
  /// Every master process that has not exited yet, by pid.
  var live: [pid_t: ChildProcess] = [:]
  let watchQueue = DispatchQueue(label: "sixty.ssh.watch")
  /// Entered for every master process, left when it has exited.
  let closing = DispatchGroup()
  /// The `pkill` helpers still running (see `stopRemote`); `closeAll` waits for them.
  let helpers = DispatchGroup()
  var stoppers: [UUID: ChildProcess] = [:]
  /// Hosts whose only task runs as their master connection's own session, by host.
  var fused: [String: FusedTask] = [:]
  /// Run a host's only task as its master's own session (no second ssh process per host).
  public var fuseSingleTasks = true

  public init(
    targets: [String: ExecutionTarget], runDirectory: String, keyPath: String, hostKeyPolicy: HostKeyPolicy,
    connectTimeout: Int = 10, outputCap: Int = 1 << 20, ssh: String = "ssh", extraOptions: [String] = [],
    knownHostsFile: String? = nil
  ) {
    self.knownHostsFile = knownHostsFile ?? runDirectory + "/known_hosts"
    self.targets = targets
    var index: [String: Int] = [:]
    for (i, name) in targets.keys.sorted().enumerated() { index[name] = i }
    self.index = index
    self.runDirectory = runDirectory
    self.keyPath = keyPath
    self.hostKeyPolicy = hostKeyPolicy
    self.connectTimeout = connectTimeout
    self.outputCap = outputCap
    self.ssh = ssh
    self.extraOptions = extraOptions
  }

  func controlPath(_ host: String) -> String {
    // Short names: a socket path must fit in 108 bytes.
    "\(runDirectory)/c\(index[host] ?? 0)"
  }

  /// Options shared by the master and every task.
  func baseArguments(_ host: String, _ target: ExecutionTarget) -> [String] {
    var arguments = [ssh]
    let hostKey: [String] =
      switch hostKeyPolicy {
      case .acceptNew: Self.trustOnFirstUse(knownHostsFile)
      case .strict: ["-o", "StrictHostKeyChecking=yes"]
      case .off:
        ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
      }
    arguments += [
      "-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
      "-o", "ConnectTimeout=\(connectTimeout)", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3",
      "-o", "ControlPath=\(controlPath(host))", "-p", String(target.port), "-l", target.user,
    ]
    arguments += hostKey + extraOptions
    for option in target.sshOptions { arguments += ["-o", option] }
    return arguments
  }

  /// ssh's options for trust on first use with `file`: a new host's key is recorded, a changed
  /// one refused. `sixty ssh` passes the same.
  public static func trustOnFirstUse(_ file: String) -> [String] {
    ["-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=\(sshConfigQuoted(file))"]
  }

  /// A path as one ssh_config word (UserKnownHostsFile splits on spaces unless quoted).
  static func sshConfigQuoted(_ path: String) -> String {
    path.utf8.contains(UInt8(ascii: " ")) ? "\"\(path)\"" : path
  }

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
    guard !target.address.hasPrefix("-"), !target.user.hasPrefix("-") else {
      completion(.failed("the address or user of \(host.name) starts with '-'; refusing to pass it to ssh"))
      return
    }
    // Watched before the first master starts, so that no socket can appear unseen.
    prepareNotifier()
    // A socket left by a master that died would stop a new master from listening.
    let socket = controlPath(host.name)
    unlink(socket)
    // The master stays our child (no -f, so no `-O check` to learn its pid and no `-O exit` to
    // stop it): ssh creates the control socket only once it has authenticated, so the socket
    // appearing is the authentication signal, and the process exiting before that is a failure.
    let log = runDirectory + "/ssh\(index[host.name] ?? 0).log"
    // A host with one task (no retries) runs it as the master's own session: one ssh process and
    // one round of session set-up fewer. Its output is the master's; VERBOSE puts the
    // "Authenticated to" line in the log, for a task that ends before its socket is seen.
    let invocation =
      fuseSingleTasks && host.tasks.count == 1 && host.tasks[0].retries == 0
      ? remoteInvocation(host: host, task: 0, target: target) : nil
    let arguments = masterArguments(host.name, target, log: log, command: invocation?.command)
    let attempt = ConnectAttempt(completion: completion)
    if invocation != nil {
      truncate(log, 0)
      fusedMaster(
        host: host, target: target, arguments: arguments, stdin: invocation!.stdin, log: log, socket: socket,
        attempt: attempt)
      return
    }
    do {
      // The lock is held across the start, so the completion's removal comes after the insert.
      try lock.withLock {
        closing.enter()
        let child: ChildProcess
        do {
          child = try ChildProcess.run(arguments, cap: 0, capture: false) { [self] output in
            lock.withLock { forgetMaster(host.name, attempt) }
            if attempt.finish() {
              attempt.completion(.failed(failure(host: host.name, target: target, status: output.status)))
            }
            closing.leave()
          }
        } catch {
          closing.leave()
          throw error
        }
        attempt.child = child
        live[child.pid] = child
        connecting[host.name] = child
        watching[host.name] = (socket, attempt)
      }
      startWatching()
    } catch {
      completion(.failed("\(error)"))
    }
  }

  /// The master's command line: `-M -N` for a host whose tasks are multiplexed over it, or
  /// `-M … HOST COMMAND` when its only task is the master's own session. ssh keeps the first
  /// value of an option, so the fused master's `LogLevel=VERBOSE` (for its log file, not the
  /// terminal) comes before the host-key policy's `LogLevel=ERROR`.
  func masterArguments(_ host: String, _ target: ExecutionTarget, log: String, command: String?) -> [String] {
    var arguments = baseArguments(host, target)
    guard let command else {
      return arguments + [
        "-M", "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-E", log, "--", target.address,
      ]
    }
    arguments.insert(contentsOf: ["-o", "LogLevel=VERBOSE"], at: 1)
    return arguments + [
      "-M", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-E", log, "-T", "--", target.address,
      command,
    ]
  }

  /// A fused host's master: it authenticates, runs the host's only task as its own session and
  /// exits with the task's status. Reported as a connection (socket seen, or "Authenticated to"
  /// in its log when the task ended first), then as the task's outcome.
  func fusedMaster(
    host: ScheduledHost, target: ExecutionTarget, arguments: [String], stdin: ChildProcess.Input, log: String,
    socket: String, attempt: ConnectAttempt
  ) {
    let fusedTask = FusedTask()
    let key = Self.runningKey(host.name, 0)
    do {
      try lock.withLock {
        closing.enter()
        let child: ChildProcess
        do {
          child = try ChildProcess.run(arguments, stdin: stdin, cap: outputCap) { [self] output in
            let ended = Date()
            lock.withLock {
              forgetMaster(host.name, attempt)
              if running[key] === attempt.child { running.removeValue(forKey: key) }
            }
            if attempt.finish() {
              // Ended before its socket was seen: it authenticated if it exited with anything but
              // 255 (ssh's own failures are always 255), or if its log says so.
              let authenticated =
                output.status != 255
                || {
                  let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                  return text.contains("\nAuthenticated to ") || text.hasPrefix("Authenticated to ")
                }()
              guard authenticated else {
                forgetFused(host.name, fusedTask)
                attempt.completion(.failed(failure(host: host.name, target: target, status: output.status)))
                closing.leave()
                return
              }
              fusedTask.markStarted()
              attempt.completion(.authenticated)
            }
            let capture = TaskCapture(
              host: host.name, task: 0, status: output.status, stdout: output.stdout, stderr: output.stderr,
              started: fusedTask.started, ended: ended)
            let outcome: TaskOutcome
            if output.status == 255 && Self.connectionClosed(stderr: output.stderr.text) {
              outcome = .connectionLost("the connection to \(host.name) was lost")
            } else if target.okCodes[0].contains(output.status) {
              outcome = .exited(0)
            } else {
              outcome = .exited(output.status == 0 ? 1 : output.status)
            }
            // Delivered now if the scheduler already asked for the task. If not (a quick task
            // under load ends before the scheduler has acted on its authentication), the host
            // stays in `fused` until `run` collects the outcome: a `run` that found no fused
            // task would start the task again, over a fresh login, since the master and its
            // socket are gone.
            if let completion = fusedTask.finish(outcome, capture) {
              forgetFused(host.name, fusedTask)
              onCapture?(capture)
              completion(outcome)
            }
            closing.leave()
          }
        } catch {
          closing.leave()
          throw error
        }
        attempt.child = child
        live[child.pid] = child
        connecting[host.name] = child
        // In `running` only once authenticated (see `checkSockets`): stopping a task goes
        // through the master's socket, which a master still connecting does not have.
        fused[host.name] = fusedTask
        watching[host.name] = (socket, attempt)
      }
      startWatching()
    } catch {
      attempt.completion(.failed("\(error)"))
    }
  }

  /// Whether ssh's own last words on stderr say the connection went away (rather than the remote
  /// command exiting with 255).
  static func connectionClosed(stderr: String) -> Bool {
    // ssh ends its own messages with "\r\n".
    let last =
      stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).last.map {
        String($0).trimmingCharacters(in: .whitespacesAndNewlines)
      } ?? ""
    return last.hasPrefix("Connection to ")
      && (last.hasSuffix(" closed by remote host.") || last.hasSuffix(" closed."))
      || last.contains("Broken pipe") || last.contains("Connection reset by peer")
      || last.hasPrefix("Timeout, server ")
  }

  /// The only task of a fused host: its outcome arrives when the master exits, its completion
  /// when the scheduler runs it; whichever comes second delivers.
  final class FusedTask: @unchecked Sendable {
    // `lock` protects everything below.
    private let lock = NSLock()
    private var completion: (@Sendable (TaskOutcome) -> Void)?
    private var result: (TaskOutcome, TaskCapture)?
    private var startedAt = Date()

    var started: Date { lock.withLock { startedAt } }
    func markStarted() { lock.withLock { startedAt = Date() } }

    /// The outcome, if the task already ended; otherwise the completion is kept for `finish`.
    func attach(_ completion: @escaping @Sendable (TaskOutcome) -> Void) -> (TaskOutcome, TaskCapture)? {
      lock.withLock {
        if let result { return result }
        self.completion = completion
        return nil
      }
    }

    /// The completion to call, if the scheduler already asked for the task.
    func finish(_ outcome: TaskOutcome, _ capture: TaskCapture) -> (@Sendable (TaskOutcome) -> Void)? {
      lock.withLock {
        if let completion {
          self.completion = nil
          return completion
        }
        result = (outcome, capture)
        return nil
      }
    }
  }

  /// The host's fused task is done with: delivered, or its master failed to authenticate.
  func forgetFused(_ host: String, _ task: FusedTask) {
    lock.withLock { if fused[host] === task { fused.removeValue(forKey: host) } }
  }

  /// The key of a running task in `running`: the host's name, NUL, the task's index.
  static func runningKey(_ host: String, _ task: Int) -> String { "\(host)\u{0}\(task)" }

  /// A master process has exited: it is no longer live, connecting, a host's master or watched
  /// for. Called with `lock` held.
  func forgetMaster(_ host: String, _ attempt: ConnectAttempt) {
    if let pid = attempt.child?.pid { live.removeValue(forKey: pid) }
    if connecting[host] === attempt.child { connecting.removeValue(forKey: host) }
    if let pid = masters[host], pid == attempt.child?.pid { masters.removeValue(forKey: host) }
    watching.removeValue(forKey: host)
  }

  /// Why a master exited before authenticating: the last line of its log.
  func failure(host: String, target: ExecutionTarget, status: Int32) -> String {
    let log =
      (try? String(contentsOfFile: runDirectory + "/ssh\(index[host] ?? 0).log", encoding: .utf8)) ?? ""
    // ssh ends its lines with "\r\n" (one Character in Swift, so split on both).
    let lines = log.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map {
      $0.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    if hostKeyPolicy == .acceptNew
      && lines.contains(where: { $0.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") })
    {
      let entry = target.port == 22 ? target.address : "[\(target.address)]:\(target.port)"
      return
        "the host key of \(host) (\(target.address):\(target.port)) is not the one recorded in \(knownHostsFile) on first use; either the host was reinstalled or its key changed, or someone is intercepting the connection. Nothing was run there. If the change is expected, remove the old key with: ssh-keygen -R '\(entry)' -f '\(knownHostsFile)'"
    }
    let reason = lines.last { !$0.isEmpty } ?? "ssh exited with status \(status)"
    return "cannot connect to \(target.user)@\(target.address):\(target.port): \(reason)"
  }

  /// One master connection attempt; reported once, as authenticated or failed.
  final class ConnectAttempt: @unchecked Sendable {
    let completion: @Sendable (ConnectOutcome) -> Void
    // `lock` protects `done`; `child` is set once, under the executor's lock, before any use.
    private let lock = NSLock()
    private var done = false
    var child: ChildProcess?
    init(completion: @escaping @Sendable (ConnectOutcome) -> Void) { self.completion = completion }
    /// True for the first caller only.
    func finish() -> Bool {
      lock.withLock {
        defer { done = true }
        return !done
      }
    }
  }

  /// Watches for the control sockets of masters still authenticating: told by inotify when a
  /// file appears in the run directory (ssh links the socket into place once authenticated), and
  /// polling as well while there are any, every 250 ms (every 5 ms without inotify).
  func startWatching() {
    let timer: DispatchSourceTimer? = lock.withLock {
      guard watcher == nil else { return nil }
      let interval = notifier == nil ? 5 : notifiedPollInterval
      let timer = DispatchSource.makeTimerSource(queue: watchQueue)
      timer.schedule(
        deadline: .now() + .milliseconds(interval), repeating: .milliseconds(interval),
        leeway: .milliseconds(max(2, interval / 10)))
      timer.setEventHandler { [weak self] in self?.checkSockets() }
      watcher = timer
      return timer
    }
    timer?.resume()
  }

  /// Starts inotify on the run directory, once (see `makeNotifier`).
  func prepareNotifier() {
    let source: DispatchSourceRead? = lock.withLock {
      guard !notifierTried else { return nil }
      notifierTried = true
      notifier = makeNotifier()
      return notifier
    }
    source?.resume()
  }

  /// inotify on the run directory, read on `watchQueue`: each batch of new names is checked
  /// against the sockets being waited for.
  private func makeNotifier() -> DispatchSourceRead? {
    #if os(Linux)
      let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
      guard fd >= 0 else { return nil }
      guard inotify_add_watch(fd, runDirectory, UInt32(IN_CREATE | IN_MOVED_TO)) >= 0 else {
        close(fd)
        return nil
      }
      let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: watchQueue)
      source.setEventHandler { [weak self] in
        var names: Set<String>? = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
          let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
          if count <= 0 { break }
          var offset = 0
          // struct inotify_event: wd, mask, cookie, len (4 bytes each), then len bytes of name.
          while offset + 16 <= count {
            func field(_ at: Int) -> UInt32 {
              (0..<4).reduce(0) { $0 | UInt32(buffer[offset + at + $1]) << (8 * $1) }
            }
            let mask = field(4)
            let length = Int(field(12))
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { names = nil }
            let name = buffer[(offset + 16)..<min(count, offset + 16 + length)].prefix { $0 != 0 }
            if !name.isEmpty { names?.insert(String(decoding: name, as: UTF8.self)) }
            offset += 16 + length
          }
        }
        self?.checkSockets(named: names)
      }
      source.setCancelHandler { close(fd) }
      return source
    #else
      return nil
    #endif
  }

  /// Checks the sockets being waited for (only those with one of `names`, when given).
  func checkSockets(named names: Set<String>? = nil) {
    if let names, names.isEmpty { return }
    let paths = names.map { Set($0.map { runDirectory + "/" + $0 }) }
    let pending = lock.withLock { watching }
    var info = stat()
    var ready: [(String, ConnectAttempt)] = []
    for (host, (socket, attempt)) in pending {
      if let paths, !paths.contains(socket) { continue }
      if lstat(socket, &info) == 0 { ready.append((host, attempt)) }
    }
    lock.withLock {
      for (host, attempt) in ready {
        if let fusedTask = fused[host], let child = attempt.child {
          fusedTask.markStarted()
          running[Self.runningKey(host, 0)] = child
        }
        watching.removeValue(forKey: host)
        if let child = attempt.child, connecting[host] === child {
          connecting.removeValue(forKey: host)
          masters[host] = child.pid
        }
      }
      if watching.isEmpty {
        watcher?.cancel()
        watcher = nil
      }
    }
    for (_, attempt) in ready where attempt.finish() { attempt.completion(.authenticated) }
  }

  /// The command as the remote side runs it: named by `marker` (its `$0`) so it can be found and
  /// stopped, and under the remote `timeout` (coreutils) when the task has a timeout, so a task
  /// that hangs ends on the host too, a second after Sixty gives up on it (where `timeout` is
  /// missing the command runs without it).
  static func wrapped(_ command: String, seconds: Double?, marker: String) -> String {
    let quoted = ShellQuote.quote(command) + " " + ShellQuote.quote(marker)
    guard let seconds, seconds > 0 else { return "exec sh -c \(quoted)" }
    let limit = Int(seconds.rounded(.up)) + 1
    return
      "if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 \(limit) sh -c \(quoted); else exec sh -c \(quoted); fi"
  }

  func taskMarker(_ host: String, _ task: Int) -> String { "\(marker)-\(index[host] ?? 0)-\(task)" }

  /// Stops remote task processes whose name starts with `prefix` (SIGTERM, through the host's
  /// master connection); `wait` blocks until the remote side answered or 3 s passed.
  func stopRemote(_ host: String, prefix: String, exact: Bool, wait: Bool) {
    guard let target = targets[host] else { return }
    // "sixty-tas[k]-…": the pattern does not match the shell that runs pkill itself.
    let pattern = prefix.replacingOccurrences(of: "sixty-task-", with: "sixty-tas[k]-") + (exact ? "$" : "")
    let arguments =
      baseArguments(host, target) + [
        "-o", "ControlMaster=no", "-T", "--", target.address,
        "pkill -TERM -f -- " + ShellQuote.quote(pattern),
      ]
    let done = DispatchSemaphore(value: 0)
    let id = UUID()
    helpers.enter()
    guard
      let child = try? ChildProcess.run(
        arguments, cap: 4096,
        completion: { [self] _ in
          lock.withLock { _ = stoppers.removeValue(forKey: id) }
          helpers.leave()
          done.signal()
        })
    else {
      helpers.leave()
      return
    }
    lock.withLock { stoppers[id] = child }
    if wait { _ = done.wait(timeout: .now() + 3) }
  }

  /// The remote command line for a task (run by the remote user's shell), and its stdin.
  ///
  /// A task with `env:` sends its variables over stdin, as `export` lines read by `sh -s` before
  /// the command itself, never on a command line: `ps` on the runner shows ssh's arguments, and
  /// `ps` on the host shows the remote shell's.
  static func remoteCommand(_ task: RenderedTask, become: String?) -> (
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

  /// The remote command line of a task, wrapped (see `wrapped`), and the file for its stdin.
  func remoteInvocation(host: ScheduledHost, task: Int, target: ExecutionTarget) -> (
    command: String, stdin: ChildProcess.Input
  )? {
    guard task < target.tasks.count, let rendered = target.tasks[task] else { return nil }
    let (command, stdin) = Self.remoteCommand(rendered, become: target.become[task])
    return (
      Self.wrapped(
        command, seconds: task < host.tasks.count ? host.tasks[task].timeout : nil,
        marker: taskMarker(host.name, task)), stdin
    )
  }

  public func run(host: ScheduledHost, task: Int, completion: @escaping @Sendable (TaskOutcome) -> Void) {
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
    let arguments =
      baseArguments(host.name, target) + ["-o", "ControlMaster=no", "-T", "--", target.address, command]
    let key = Self.runningKey(host.name, task)
    let started = Date()
    do {
      let child = try ChildProcess.run(arguments, stdin: stdin, cap: outputCap) { [self] output in
        lock.withLock { _ = running.removeValue(forKey: key) }
        onCapture?(
          TaskCapture(
            host: host.name, task: task, status: output.status, stdout: output.stdout, stderr: output.stderr,
            started: started, ended: Date()))
        if output.status == 255 && !masterAlive(host.name, target) {
          completion(.connectionLost("the connection to \(host.name) was lost"))
        } else if target.okCodes[task].contains(output.status) {
          completion(.exited(0))
        } else {
          completion(.exited(output.status == 0 ? 1 : output.status))
        }
      }
      lock.withLock { running[key] = child }
    } catch {
      completion(.failed("\(error)"))
    }
  }

  /// Whether the host's master connection still answers (`ssh -O check`).
  func masterAlive(_ host: String, _ target: ExecutionTarget) -> Bool {
    let group = DispatchGroup()
    group.enter()
    nonisolated(unsafe) var alive = false
    let check = baseArguments(host, target) + ["-O", "check", "--", target.address]
    if (try? ChildProcess.run(
      check, cap: 4096,
      completion: { output in
        alive = output.status == 0
        group.leave()
      })) == nil
    {
      group.leave()
    }
    group.wait()
    return alive
  }

  public func kill(host: ScheduledHost, task: Int) {
    let child = lock.withLock { running[Self.runningKey(host.name, task)] }
    guard let child else { return }
    // The remote process first (its session then ends by itself), the local ssh client after.
    DispatchQueue.global().async { [self] in
      stopRemote(host.name, prefix: taskMarker(host.name, task), exact: true, wait: true)
      child.terminate(SIGTERM)
    }
  }

  public func disconnect(host: ScheduledHost) {
    // A client still connecting is stopped (its completion then reports a failure nobody waits for).
    let (connectingChild, pid) = lock.withLock {
      watching.removeValue(forKey: host.name)
      return (connecting.removeValue(forKey: host.name), masters.removeValue(forKey: host.name))
    }
    connectingChild?.terminate(SIGTERM)
    // SIGTERM makes an ssh master close its sessions and the connection, and remove its socket.
    if let pid, pid > 0 { terminateMaster(pid) }
  }

  /// Sends SIGTERM to a master, and again every 100 ms while it lives (for up to 5 s).
  ///
  /// OpenSSH's client loop sets a flag in its SIGTERM handler and checks it before it sleeps in
  /// poll(2) (9.2 has no ppoll there): a signal that lands between the check and the poll is
  /// seen only when the poll times out (ServerAliveInterval, 15 s). Seen here on about one
  /// master in 50 under load, holding up the run's end. A second signal wakes the poll.
  func terminateMaster(_ pid: pid_t) {
    Foundation.kill(pid, SIGTERM)
    retermination(pid, left: 50)
  }

  private func retermination(_ pid: pid_t, left: Int) {
    guard left > 0 else { return }
    watchQueue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
      // Only while our reaper has not collected it, so the pid is still this master's.
      guard lock.withLock({ live[pid] != nil }) else { return }
      Foundation.kill(pid, SIGTERM)
      retermination(pid, left: left - 1)
    }
  }

  /// Closes every master connection still open and waits for the masters to exit (before the
  /// run directory, which holds the control sockets, is wiped).
  public func closeAll() {
    // Remote stops still on their way get a moment, then are ended: nothing outlives the run.
    if helpers.wait(timeout: .now() + 3) == .timedOut {
      for child in lock.withLock({ Array(stoppers.values) }) { child.terminate(SIGKILL) }
      _ = helpers.wait(timeout: .now() + 2)
    }
    let (children, pids) = lock.withLock {
      watching.removeAll()
      notifier?.cancel()
      notifier = nil
      defer {
        connecting.removeAll()
        masters.removeAll()
      }
      return (Array(connecting.values), Array(masters.values))
    }
    for child in children { child.terminate(SIGTERM) }
    for pid in pids where pid > 0 { terminateMaster(pid) }
    if closing.wait(timeout: .now() + 5) == .timedOut {
      for child in lock.withLock({ Array(live.values) }) { child.terminate(SIGKILL) }
      _ = closing.wait(timeout: .now() + 2)
    }
  }

  /// Kills every running task (second interrupt).
  ///
  /// The remote processes are stopped through each host's master connection first; then the
  /// local ssh clients are killed, and the masters of hosts that still have a running task, since
  /// a master holds its sessions' pipes.
  public func killAll() {
    let hosts = lock.withLock { Set(running.keys.map { String($0.split(separator: "\u{0}").first ?? "") }) }
    let group = DispatchGroup()
    for host in hosts {
      group.enter()
      DispatchQueue.global().async { [self] in
        stopRemote(host, prefix: "\(marker)-\(index[host] ?? 0)-", exact: false, wait: true)
        group.leave()
      }
    }
    _ = group.wait(timeout: .now() + 4)
    let (children, pids) = lock.withLock {
      let busy = Set(running.keys.map { String($0.split(separator: "\u{0}").first ?? "") })
      return (Array(running.values), busy.compactMap { masters[$0] })
    }
    for child in children { child.terminate(SIGKILL) }
    for pid in pids where pid > 0 { Foundation.kill(pid, SIGKILL) }
  }
}
