import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// glibc's pipe2(2), which the Glibc module does not export (it needs _GNU_SOURCE).
@_silgen_name("pipe2")
private func systemPipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32

/// A child process started with posix_spawn; its exit is collected on a background thread by
/// waitpid (never by polling).
final class ChildProcess: @unchecked Sendable {
  let pid: pid_t
  // Pipes are created close-on-exec in one step (pipe2), so no child inherits another's pipe
  // ends and spawns need no lock: many hosts' ssh clients start at once.

  struct Output: Sendable {
    var status: Int32  // exit status, or 128+signal
    var stdout: CappedBuffer
    var stderr: CappedBuffer
  }

  /// What a child reads on stdin.
  enum Input: Sendable, Equatable {
    case none
    /// A local file (a script, an upload's source).
    case file(String)
    /// Bytes written through a pipe, then the file's contents when there is one. Secrets go this
    /// way (environment values): never on a command line, where `ps` shows them, nor on disk.
    case bytes([UInt8], then: String?)
  }

  private init(pid: pid_t) { self.pid = pid }

  /// Runs `arguments[0]` (looked up on PATH) with stdin from `stdin` (or /dev/null) and
  /// captures stdout and stderr up to `cap` bytes each; `completion` gets everything once the
  /// process has exited and both pipes are drained. With `capture` false, stdout and stderr go
  /// to /dev/null (no pipes, no reader threads), for long-lived processes that log elsewhere.
  static func run(
    _ arguments: [String], stdin: Input = .none, cap: Int, capture: Bool = true,
    completion: @escaping @Sendable (Output) -> Void
  ) throws -> ChildProcess {
    var out: [Int32] = [-1, -1]
    var err: [Int32] = [-1, -1]
    var input: [Int32] = [-1, -1]
    if case .bytes = stdin {
      guard systemPipe2(&input, O_CLOEXEC) == 0 else {
        throw ExecutionError("pipe: \(String(cString: strerror(errno)))")
      }
    }
    func addStdin(_ actions: inout posix_spawn_file_actions_t) {
      switch stdin {
      case .none: posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
      case .file(let path): posix_spawn_file_actions_addopen(&actions, 0, path, O_RDONLY, 0)
      case .bytes: posix_spawn_file_actions_adddup2(&actions, input[0], 0)
      }
    }

    func spawnChild() throws -> pid_t {
      if !capture {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        addStdin(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        return try spawn(arguments, actions: &actions)
      }
      guard systemPipe2(&out, O_CLOEXEC) == 0 else {
        throw ExecutionError("pipe: \(String(cString: strerror(errno)))")
      }
      guard systemPipe2(&err, O_CLOEXEC) == 0 else {
        close(out[0])
        close(out[1])
        throw ExecutionError("pipe: \(String(cString: strerror(errno)))")
      }
      defer {
        close(out[1])
        close(err[1])
      }
      var actions = posix_spawn_file_actions_t()
      posix_spawn_file_actions_init(&actions)
      defer { posix_spawn_file_actions_destroy(&actions) }
      addStdin(&actions)
      posix_spawn_file_actions_adddup2(&actions, out[1], 1)
      posix_spawn_file_actions_adddup2(&actions, err[1], 2)
      do {
        return try spawn(arguments, actions: &actions)
      } catch {
        close(out[0])
        close(err[0])
        throw error
      }
    }

    func finish(_ pid: pid_t) -> ChildProcess {
      let child = ChildProcess(pid: pid)
      guard capture else {
        WatcherThread.start {
          var status: Int32 = 0
          while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
          let signal = status & 0x7f
          let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
          completion(Output(status: code, stdout: CappedBuffer(cap: 0), stderr: CappedBuffer(cap: 0)))
        }
        return child
      }

      // One thread per child: it reads both pipes to their ends, then reaps the process.
      let (stdoutFD, stderrFD) = (out[0], err[0])
      WatcherThread.start {
        let (stdout, stderr) = drain(stdoutFD, stderrFD, cap: cap)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        completion(Output(status: code, stdout: stdout, stderr: stderr))
      }
      return child
    }

    let spawned: pid_t
    do {
      spawned = try spawnChild()
    } catch {
      if input[0] >= 0 {
        close(input[0])
        close(input[1])
      }
      throw error
    }
    if case .bytes(let bytes, let file) = stdin {
      close(input[0])
      let writeEnd = input[1]
      WatcherThread.start { feed(writeEnd, bytes, then: file) }
    }
    return finish(spawned)
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

  /// Reads two pipes until both reach their end, keeping at most `cap` bytes of each, and
  /// closes them.
  static func drain(_ first: Int32, _ second: Int32, cap: Int) -> (CappedBuffer, CappedBuffer) {
    var buffers = [CappedBuffer(cap: cap), CappedBuffer(cap: cap)]
    var fds = [
      pollfd(fd: first, events: Int16(POLLIN), revents: 0),
      pollfd(fd: second, events: Int16(POLLIN), revents: 0),
    ]
    var chunk = [UInt8](repeating: 0, count: 16384)
    var open = 2
    while open > 0 {
      if poll(&fds, 2, -1) < 0 {
        if errno == EINTR { continue }
        break
      }
      for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
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
    return (buffers[0], buffers[1])
  }

  /// posix_spawnp with default SIGINT/SIGTERM, no blocked signals and its own process group.
  private static func spawn(_ arguments: [String], actions: inout posix_spawn_file_actions_t) throws -> pid_t
  {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGINT)
    sigaddset(&defaults, SIGTERM)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    // Nothing blocked: the spawning thread may be a dispatch worker, which blocks most signals,
    // and a child that inherited that mask would never see the SIGTERM that stops it.
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    // Not the terminal's process group: a terminal's Ctrl-C reaches Sixty, which decides what to
    // stop. The reaper's group, so that they end with this process however it ends.
    posix_spawnattr_setpgroup(&attributes, ChildReaper.group ?? 0)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    var result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    if result == EPERM && ChildReaper.group != nil {
      // The reaper's group is gone (someone killed it): a group of its own, as before.
      posix_spawnattr_setpgroup(&attributes, 0)
      result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    }
    guard result == 0 else {
      throw ExecutionError("cannot run \(arguments[0]): \(String(cString: strerror(result))).")
    }
    return pid
  }

  func terminate(_ signal: Int32 = SIGTERM) { kill(pid, signal) }
}

/// Ends every child of this process when this process ends, however it ends (SIGKILL and
/// crashes included), so that no ssh master outlives the run: an open master would keep running
/// commands through its control socket long after its key's window closed.
///
/// The reaper is a small `sh` in a process group of its own, which every child joins. It reads
/// a pipe whose only write end this process holds (close-on-exec, so no child inherits it); the
/// kernel closes that end when this process dies, and at end of file the reaper sends SIGTERM to
/// the group, again a second later (the OpenSSH client can miss one, see
/// `SSHExecutor.terminateMaster`), and SIGKILL a second after that. It ignores the signals it
/// sends, and the terminal's. Nothing is left for it to do after a clean exit, when it ends
/// within two seconds.
enum ChildReaper {
  /// The reaper's process group, or nil when it could not be started (children then get groups
  /// of their own, as a plain child would).
  static let group: pid_t? = start()

  static let script = """
    trap '' INT TERM HUP QUIT PIPE
    while read -r _; do :; done
    kill -TERM 0 2>/dev/null; sleep 1
    kill -TERM 0 2>/dev/null; sleep 1
    kill -KILL 0 2>/dev/null
    """

  private static func start() -> pid_t? {
    var fds: [Int32] = [-1, -1]
    guard systemPipe2(&fds, O_CLOEXEC) == 0 else { return nil }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
    let words: [String] = ["/bin/sh", "-c", script, "sixty-reaper"]
    let argv = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
    close(fds[0])
    guard result == 0 else {
      close(fds[1])
      return nil
    }
    // fds[1] stays open for the life of the process: its closing is the reaper's signal.
    return pid
  }
}

/// The thread that watches one child: a plain detached pthread with a small stack. It only polls,
/// reads and waits, so 256 KiB is plenty; and glibc keeps up to 40 MiB of exited threads'
/// stacks for reuse, so at this size a run with a hundred hosts at work maps no new stacks once
/// its first hosts are done (with the default 8 MiB stack, every exit unmapped one).
enum WatcherThread {
  static let stackSize = 256 * 1024

  static func start(_ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, stackSize)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let result = pthread_create(
      &thread, &attributes,
      { argument in
        Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
      }, box)
    if result != 0 {
      // Out of threads: watch from a Foundation thread rather than lose the child's exit.
      let body = Unmanaged<Box>.fromOpaque(box).takeRetainedValue().body
      Thread.detachNewThread { body() }
    }
  }

  final class Box {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
  }
}

/// Output kept up to a cap; the rest is counted, not stored.
public struct CappedBuffer: Sendable, Equatable {
  public let cap: Int
  public private(set) var bytes: [UInt8] = []
  public private(set) var dropped = 0

  public init(cap: Int) { self.cap = cap }

  mutating func append(_ chunk: ArraySlice<UInt8>) {
    let room = cap - bytes.count
    if room > 0 { bytes += chunk.prefix(room) }
    dropped += max(0, chunk.count - max(0, room))
  }

  /// The text, with a visible marker when output was cut.
  public var text: String {
    var text = String(decoding: bytes, as: UTF8.self)
    if dropped > 0 {
      if !text.hasSuffix("\n") && !text.isEmpty { text += "\n" }
      text += "[sixty: output truncated: \(dropped) more bytes not kept (cap \(cap) bytes)]\n"
    }
    return text
  }
}

public struct ExecutionError: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ description: String) { self.description = description }
}
