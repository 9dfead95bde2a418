import Foundation

#if canImport(Glibc)
  import Glibc
#endif

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
public enum ChildReaper {
  /// The reaper's process group, or nil when it could not be started (children then get groups
  /// of their own, as a plain child would).
  public static let group: pid_t? = start()

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
