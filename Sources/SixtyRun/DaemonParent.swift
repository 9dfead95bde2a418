import CSixtyParentDeath
import Foundation

/// A run started by `sixty jobs daemon` stops with it: if the daemon dies (even by SIGKILL), the
/// kernel sends the run SIGTERM (`PR_SET_PDEATHSIG`), so it stops as on a signal and records itself
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
    _ = sixty_set_parent_death_signal(SIGTERM)
    // The parent may have died before the call: then we were adopted already.
    return getppid() == expected
  }

  /// Whether the daemon that started this run has died.
  public static var died: Bool { parent != 0 && getppid() != parent }
}
