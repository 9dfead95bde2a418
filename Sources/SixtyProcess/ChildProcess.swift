import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// glibc's pipe2(2), which the Glibc module does not export (it needs _GNU_SOURCE).
@_silgen_name("pipe2")
func systemPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// A failure to start a child, as a sentence naming what is at fault; `code` is the errno.
public struct ProcessError: Error, CustomStringConvertible, Sendable {
  /// What could not be done.
  public enum Step: Sendable, Equatable {
    case pipe
    /// Opening the file the output is appended to.
    case open(String)
    /// Starting the program (`arguments[0]`).
    case spawn(String)
  }

  public var step: Step
  public var code: Int32

  public var description: String {
    let reason = String(cString: strerror(code))
    switch step {
    case .pipe: return "pipe: \(reason)"
    case .open(let path): return "cannot open \(path): \(reason)."
    case .spawn(let program): return "cannot run \(program): \(reason)."
    }
  }
}

/// How a child is started: its standard streams, process group, signals and environment.
public struct SpawnOptions: Sendable, Equatable {
  /// Where a child's stdout and stderr go.
  public enum Output: Sendable, Equatable {
    /// Through pipes, kept up to `cap` bytes each (stderr into stdout's pipe when `mergeStderr`).
    case capture(cap: Int, keeping: CappedBuffer.Keep = .head, mergeStderr: Bool = false)
    /// To /dev/null: no pipes, no reading, for long-lived processes that log elsewhere.
    case discard
    /// Both appended to this file, created 0600 when missing.
    case appending(to: String)
    /// This process's own (a foreground program on the terminal).
    case inherit
  }

  /// Which process group a child joins.
  public enum Group: Sendable, Equatable {
    /// `ChildReaper`'s, so that it ends with this process however this process ends (a group of
    /// its own when the reaper is gone).
    case reaper
    /// A new group led by the child: a terminal's Ctrl-C reaches this process only.
    case own
    /// This process's (the terminal's foreground group, for an interactive program).
    case inherit
  }

  public var stdin: ChildProcess.Input
  public var output: Output
  public var group: Group
  /// Signals set back to their default action in the child (this process may ignore them).
  public var defaultSignals: [Int32]
  /// The child's whole environment; nil for this process's.
  public var environment: [String: String]?

  public init(
    stdin: ChildProcess.Input = .none, output: Output = .capture(cap: 0), group: Group = .reaper,
    defaultSignals: [Int32] = [SIGINT, SIGTERM], environment: [String: String]? = nil
  ) {
    self.stdin = stdin
    self.output = output
    self.group = group
    self.defaultSignals = defaultSignals
    self.environment = environment
  }
}

/// A child process started with posix_spawn; its exit is collected on a background thread by
/// waitpid (never by polling).
public final class ChildProcess: @unchecked Sendable {
  // Safe: its only stored property is an immutable pid.
  public let pid: pid_t
  // Pipes are created close-on-exec in one step (pipe2), so no child inherits another's pipe
  // ends and spawns need no lock: many hosts' ssh clients start at once.

  public struct Output: Sendable {
    public var pid: pid_t
    public var ended: WaitStatus
    public var stdout: CappedBuffer
    public var stderr: CappedBuffer
    /// The exit status, or 128+signal.
    public var status: Int32 { ended.code }

    public init(pid: pid_t, ended: WaitStatus, stdout: CappedBuffer, stderr: CappedBuffer) {
      self.pid = pid
      self.ended = ended
      self.stdout = stdout
      self.stderr = stderr
    }
  }

  /// What a child reads on stdin.
  public enum Input: Sendable, Equatable {
    case none
    /// A local file (a script, an upload's source).
    case file(String)
    /// Bytes written through a pipe, then the file's contents when there is one. Secrets go this
    /// way (environment values): never on a command line, where `ps` shows them, nor on disk.
    case bytes([UInt8], then: String?)
    /// This process's own stdin (a foreground program on the terminal).
    case inherit
  }

  private init(pid: pid_t) { self.pid = pid }

  /// Runs `arguments[0]` (looked up on PATH) with stdin from `stdin` (or /dev/null) and
  /// captures stdout and stderr up to `cap` bytes each; `completion` gets everything once the
  /// process has exited and both pipes are drained. With `capture` false, stdout and stderr go
  /// to /dev/null (no pipes, no reader threads), for long-lived processes that log elsewhere.
  public static func run(
    _ arguments: [String], stdin: Input = .none, cap: Int, capture: Bool = true,
    completion: @escaping @Sendable (Output) -> Void
  ) throws -> ChildProcess {
    try start(
      arguments, SpawnOptions(stdin: stdin, output: capture ? .capture(cap: cap) : .discard),
      completion: completion)
  }

  /// Starts `arguments[0]` (looked up on PATH) as `options` say; `completion` gets the exit and
  /// any captured output once the process has exited and its pipes are drained. Never blocks.
  /// - Throws: `ProcessError` when a pipe, the output file or the process cannot be made.
  public static func start(
    _ arguments: [String], _ options: SpawnOptions, completion: @escaping @Sendable (Output) -> Void
  ) throws -> ChildProcess {
    var pipes = Pipes()
    do {
      let pid = try spawn(arguments, options, pipes: &pipes)
      pipes.closeChildEnds()
      if case .bytes(let bytes, let file) = options.stdin {
        let writeEnd = pipes.input[1]
        WatcherThread.start { feed(writeEnd, bytes, then: file) }
      }
      watch(pid, pipes: pipes, output: options.output, completion: completion)
      return ChildProcess(pid: pid)
    } catch {
      pipes.closeAll()
      throw error
    }
  }

  /// Starts a child as `options` say and waits for it without blocking a thread of the
  /// cooperative pool; the task's cancellation does not stop the child.
  public static func run(_ arguments: [String], _ options: SpawnOptions) async throws -> Output {
    let result: Result<Output, any Error> = await withCheckedContinuation { continuation in
      do {
        _ = try start(arguments, options) { continuation.resume(returning: .success($0)) }
      } catch {
        continuation.resume(returning: .failure(error))
      }
    }
    return try result.get()
  }

  /// The descriptors of one spawn; -1 where there is none.
  struct Pipes {
    var input: [Int32] = [-1, -1]
    var out: [Int32] = [-1, -1]
    var err: [Int32] = [-1, -1]
    var log: Int32 = -1

    /// A close-on-exec pipe: read end, write end.
    static func make() throws -> [Int32] {
      var fds: [Int32] = [-1, -1]
      guard systemPipe2(&fds, O_CLOEXEC) == 0 else { throw ProcessError(step: .pipe, code: errno) }
      return fds
    }

    /// After the spawn: the ends the child holds, and the log file.
    mutating func closeChildEnds() {
      for fd in [input[0], out[1], err[1], log] where fd >= 0 { close(fd) }
      (input[0], out[1], err[1], log) = (-1, -1, -1, -1)
    }

    mutating func closeAll() {
      for fd in input + out + err + [log] where fd >= 0 { close(fd) }
      self = Pipes()
    }
  }

  private static func spawn(_ arguments: [String], _ options: SpawnOptions, pipes: inout Pipes) throws
    -> pid_t
  {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    switch options.stdin {
    case .none: posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    case .file(let path): posix_spawn_file_actions_addopen(&actions, 0, path, O_RDONLY, 0)
    case .bytes:
      pipes.input = try Pipes.make()
      posix_spawn_file_actions_adddup2(&actions, pipes.input[0], 0)
    case .inherit: break
    }
    switch options.output {
    case .capture(_, _, let merge):
      pipes.out = try Pipes.make()
      posix_spawn_file_actions_adddup2(&actions, pipes.out[1], 1)
      if merge {
        posix_spawn_file_actions_adddup2(&actions, pipes.out[1], 2)
      } else {
        pipes.err = try Pipes.make()
        posix_spawn_file_actions_adddup2(&actions, pipes.err[1], 2)
      }
    case .discard:
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
      posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    case .appending(let path):
      pipes.log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
      guard pipes.log >= 0 else { throw ProcessError(step: .open(path), code: errno) }
      posix_spawn_file_actions_adddup2(&actions, pipes.log, 1)
      posix_spawn_file_actions_adddup2(&actions, pipes.log, 2)
    case .inherit: break
    }
    return try spawn(arguments, options, actions: &actions)
  }

  /// Reads the child's pipes to their ends (if any), then reaps it, on one thread per child.
  private static func watch(
    _ pid: pid_t, pipes: Pipes, output: SpawnOptions.Output, completion: @escaping @Sendable (Output) -> Void
  ) {
    guard case .capture(let cap, let keep, let merge) = output else {
      WatcherThread.start {
        let ended = WaitStatus.wait(pid) ?? .exited(255)
        completion(Output(pid: pid, ended: ended, stdout: CappedBuffer(cap: 0), stderr: CappedBuffer(cap: 0)))
      }
      return
    }
    let (stdoutFD, stderrFD) = (pipes.out[0], pipes.err[0])
    WatcherThread.start {
      let buffers = drain(merge ? [stdoutFD] : [stdoutFD, stderrFD], cap: cap, keeping: keep)
      let ended = WaitStatus.wait(pid) ?? .exited(255)
      completion(
        Output(
          pid: pid, ended: ended, stdout: buffers[0],
          stderr: buffers.count > 1 ? buffers[1] : CappedBuffer(cap: 0)))
    }
  }

  /// Writes `bytes`, then the contents of `file`, to `fd` and closes it. A child that stops
  /// reading early (EPIPE) ends the feed; SIGPIPE is blocked on this thread, and a pending one is
  /// taken back, so it never reaches the process.
  static func feed(_ fd: Int32, _ bytes: [UInt8], then file: String?) {
    var pipeSignal = sigset_t()
    sigemptyset(&pipeSignal)
    sigaddset(&pipeSignal, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
    defer {
      close(fd)
      var none = timespec(tv_sec: 0, tv_nsec: 0)
      while sigtimedwait(&pipeSignal, nil, &none) == SIGPIPE {}
    }
    func writeAll(_ chunk: UnsafeRawBufferPointer) -> Bool {
      var offset = 0
      while offset < chunk.count {
        let n = write(fd, chunk.baseAddress! + offset, chunk.count - offset)
        if n < 0 {
          if errno == EINTR { continue }
          return false
        }
        offset += n
      }
      return true
    }
    guard bytes.withUnsafeBytes(writeAll) else { return }
    guard let file else { return }
    let source = open(file, O_RDONLY | O_CLOEXEC)
    guard source >= 0 else { return }
    defer { close(source) }
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { return }
      guard chunk.withUnsafeBytes({ writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) else { return }
    }
  }

  /// Reads pipes until each reaches its end, keeping at most `cap` bytes of each, and closes
  /// them.
  static func drain(_ descriptors: [Int32], cap: Int, keeping keep: CappedBuffer.Keep = .head)
    -> [CappedBuffer]
  {
    var buffers = descriptors.map { _ in CappedBuffer(cap: cap, keeping: keep) }
    var fds = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    var chunk = [UInt8](repeating: 0, count: 16384)
    var open = fds.count
    while open > 0 {
      if poll(&fds, nfds_t(fds.count), -1) < 0 {
        if errno == EINTR { continue }
        break
      }
      for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
        let n = read(fds[i].fd, &chunk, chunk.count)
        if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
        if n <= 0 {
          close(fds[i].fd)
          fds[i].fd = -1  // poll ignores negative descriptors
          open -= 1
        } else {
          buffers[i].append(chunk[0..<n])
        }
      }
    }
    for entry in fds where entry.fd >= 0 { close(entry.fd) }
    return buffers
  }

  /// posix_spawnp with the options' default signals, no blocked signals and their process group.
  private static func spawn(
    _ arguments: [String], _ options: SpawnOptions, actions: inout posix_spawn_file_actions_t
  ) throws -> pid_t {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in options.defaultSignals { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    // Nothing blocked: the spawning thread may be a dispatch worker, which blocks most signals,
    // and a child that inherited that mask would never see the SIGTERM that stops it.
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
    switch options.group {
    case .reaper:
      // Not the terminal's process group: a terminal's Ctrl-C reaches Sixty, which decides what
      // to stop. The reaper's group, so that they end with this process however it ends.
      posix_spawnattr_setpgroup(&attributes, ChildReaper.group ?? 0)
      flags |= POSIX_SPAWN_SETPGROUP
    case .own:
      posix_spawnattr_setpgroup(&attributes, 0)
      flags |= POSIX_SPAWN_SETPGROUP
    case .inherit: break
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = options.environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer {
      argv.forEach { free($0) }
      envp?.forEach { free($0) }
    }
    func spawnp(_ pid: inout pid_t) -> Int32 {
      guard var envp else { return posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ) }
      return posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, &envp)
    }
    var pid: pid_t = 0
    var result = spawnp(&pid)
    if result == EPERM && options.group == .reaper && ChildReaper.group != nil {
      // The reaper's group is gone (someone killed it): a group of its own, as before.
      posix_spawnattr_setpgroup(&attributes, 0)
      result = spawnp(&pid)
    }
    guard result == 0 else { throw ProcessError(step: .spawn(arguments[0]), code: result) }
    return pid
  }

  public func terminate(_ signal: Int32 = SIGTERM) { kill(pid, signal) }
}
