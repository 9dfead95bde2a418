import Foundation
import SixtyProcess

#if canImport(Glibc)
  import Glibc
#endif

/// posix_spawn and waitpid, without Foundation's Process (whose waitUntilExit can wait forever
/// for a child it has not reaped when called from a Swift concurrency thread).
enum Spawn {
  static let lock = NSLock()

  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  /// Starts `path` with stdin from /dev/null and stdout/stderr on the given descriptors.
  static func start(
    _ path: String, _ arguments: [String], environment: [String: String]?, directory: String?, stdout: Int32,
    stderr: Int32
  ) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, stdout, 1)
    posix_spawn_file_actions_adddup2(&actions, stderr, 2)
    let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
    // No posix_spawn_file_actions_addchdir_np here: change directory through the shell.
    let words =
      directory.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0, path] + arguments } ?? [path]
      + arguments
    let program = directory == nil ? path : "/bin/sh"
    let argv = words.map { strdup($0) } + [nil]
    let envp = env.map { strdup($0) } + [nil]
    defer {
      argv.forEach { free($0) }
      envp.forEach { free($0) }
    }
    // Default handlers and nothing blocked in the child, whatever the test's thread blocks.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for number in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, number) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    let result = posix_spawn(&pid, program, &actions, &attributes, argv, envp)
    guard result == 0 else {
      throw Failure(description: "cannot run \(path): \(String(cString: strerror(result)))")
    }
    return pid
  }

  /// Waits for `pid`; returns the exit status, or 128+signal (-1 when it cannot be waited for).
  static func wait(_ pid: pid_t) -> Int32 {
    WaitStatus.wait(pid)?.code ?? -1
  }

  static func decode(_ status: Int32) -> Int32 { WaitStatus(raw: status).code }

  /// Reads `fd` to its end on a background thread.
  final class Drain: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)
    init(_ fd: Int32) {
      Thread.detachNewThread { [self] in
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
          let n = read(fd, &buffer, buffer.count)
          if n < 0 && errno == EINTR { continue }
          if n <= 0 { break }
          data.append(contentsOf: buffer[0..<n])
        }
        close(fd)
        done.signal()
      }
    }
    var text: String {
      done.wait()
      return String(decoding: data, as: UTF8.self)
    }
  }
}

/// Runs a program to completion, draining stdout and stderr concurrently.
func runProgram(
  _ path: String, _ arguments: [String], directory: URL? = nil, environment: [String: String]? = nil
) throws -> (status: Int32, stdout: String, stderr: String) {
  var out: [Int32] = [0, 0]
  var err: [Int32] = [0, 0]
  // Pipes are made and handed over under one lock, so no other test's child inherits a write end
  // (which would keep our read from ever ending).
  let pid: pid_t = try Spawn.lock.withLock {
    guard pipe(&out) == 0, pipe(&err) == 0 else {
      throw Spawn.Failure(description: "pipe: \(String(cString: strerror(errno)))")
    }
    for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    defer {
      close(out[1])
      close(err[1])
    }
    do {
      return try Spawn.start(
        path, arguments, environment: environment, directory: directory?.path, stdout: out[1], stderr: err[1])
    } catch {
      close(out[0])
      close(err[0])
      throw error
    }
  }
  let stdout = Spawn.Drain(out[0])
  let stderr = Spawn.Drain(err[0])
  let outText = stdout.text
  let errText = stderr.text
  return (Spawn.wait(pid), outText, errText)
}
