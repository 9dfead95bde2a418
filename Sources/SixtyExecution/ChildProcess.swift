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

  private init(pid: pid_t) { self.pid = pid }

  /// Runs `arguments[0]` (looked up on PATH) with stdin from `stdinPath` (or /dev/null) and
  /// captures stdout and stderr up to `cap` bytes each; `completion` gets everything once the
  /// process has exited and both pipes are drained. With `capture` false, stdout and stderr go
  /// to /dev/null (no pipes, no reader threads), for long-lived processes that log elsewhere.
  static func run(
    _ arguments: [String], stdinPath: String? = nil, cap: Int, capture: Bool = true,
    completion: @escaping @Sendable (Output) -> Void
  ) throws -> ChildProcess {
    var out: [Int32] = [-1, -1]
    var err: [Int32] = [-1, -1]
    let pid: pid_t = try {
      if !capture {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
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
      posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
      posix_spawn_file_actions_adddup2(&actions, out[1], 1)
      posix_spawn_file_actions_adddup2(&actions, err[1], 2)
      do {
        return try spawn(arguments, actions: &actions)
      } catch {
        close(out[0])
        close(err[0])
        throw error
      }
    }()
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
    // Its own process group: a terminal's Ctrl-C reaches Sixty, which decides what to stop.
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    guard result == 0 else {
      throw ExecutionError("cannot run \(arguments[0]): \(String(cString: strerror(result))).")
    }
    return pid
  }

  func terminate(_ signal: Int32 = SIGTERM) { kill(pid, signal) }
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
