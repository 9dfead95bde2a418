#if canImport(Glibc)
  import Glibc
#endif

/// How a child process ended, decoded from waitpid's status word.
public enum WaitStatus: Sendable, Equatable {
  /// It called exit with this code (0 to 255).
  case exited(Int32)
  /// A signal ended it.
  case signalled(Int32)

  /// Decodes waitpid's status word (WIFEXITED, WEXITSTATUS, WTERMSIG).
  public init(raw: Int32) {
    let signal = raw & 0x7f
    self = signal == 0 ? .exited((raw >> 8) & 0xff) : .signalled(signal)
  }

  /// The shell's code: the exit code, or 128 plus the signal's number.
  public var code: Int32 {
    switch self {
    case .exited(let code): code
    case .signalled(let signal): 128 + signal
    }
  }

  /// Waits for `pid` on the calling thread (retrying on EINTR); nil when it cannot be waited for
  /// (not a child, or already reaped). Blocking: call it from a thread of its own, never from
  /// async code (`ChildProcess.run` waits on a watcher thread).
  public static func wait(_ pid: pid_t) -> WaitStatus? {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
      if errno != EINTR { return nil }
    }
    return WaitStatus(raw: status)
  }
}
