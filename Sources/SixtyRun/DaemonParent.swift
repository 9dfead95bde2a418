import Foundation

/// A run started by `sixty jobs daemon` stops with it: if the daemon dies (even by SIGKILL), the
/// run sends itself SIGTERM (it checks its parent each second), so it stops as on a signal and records itself
/// `interrupted`, saying why, instead of running on unsupervised (with several daemons, another
/// one takes the job's next fires).
public enum DaemonParent {
  // Written once, in `watch()`, before the run starts; read afterwards.
  nonisolated(unsafe) private static var parent: pid_t = 0

  /// Ties this process to its parent, the daemon. Returns false when the parent is already gone.
  @discardableResult
  public static func watch() -> Bool {
    let expected = getppid()
    parent = expected
    // Not PR_SET_PDEATHSIG: the kernel sends it when the daemon's *thread* that started this
    // process ends, and the daemon's worker threads come and go while it lives.
    let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
    timer.schedule(deadline: .now() + 1, repeating: 1, leeway: .milliseconds(200))
    timer.setEventHandler {
      guard getppid() != expected else { return }
      timer.cancel()
      kill(getpid(), SIGTERM)
    }
    timer.resume()
    watcher = timer
    // The parent may have died before the call: then we were adopted already.
    return getppid() == expected
  }

  nonisolated(unsafe) private static var watcher: (any DispatchSourceTimer)?

  /// Whether the daemon that started this run has died.
  public static var died: Bool { parent != 0 && getppid() != parent }
}
