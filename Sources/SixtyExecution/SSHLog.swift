import Foundation
import SixtyPolicy
import SixtyScheduler

/// What ssh's own words (a master's log file, a task's stderr) say: whether a connection was
/// lost, whether a master authenticated, and why one failed.
enum SSHLog {
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

  /// Whether a fused master that exited before its socket was seen had authenticated: it exited
  /// with anything but 255 (ssh's own failures are always 255), or its VERBOSE log says so.
  static func authenticated(status: Int32, log: String) -> Bool {
    status != 255 || log.contains("\nAuthenticated to ") || log.hasPrefix("Authenticated to ")
  }

  /// Why a master exited before authenticating: the last line of its log, or a changed host key
  /// explained.
  static func failure(
    host: String, target: ExecutionTarget, status: Int32, log: String, hostKeyPolicy: HostKeyPolicy,
    knownHostsFile: String
  ) -> String {
    // ssh ends its lines with "\r\n" (one Character in Swift, so split on both).
    let lines = log.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map {
      $0.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    if hostKeyPolicy == .acceptNew
      && lines.contains(where: { $0.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") })
    {
      return changedHostKey(
        host: host, address: target.address, port: target.port, knownHostsFile: knownHostsFile)
    }
    let reason = lines.last { !$0.isEmpty } ?? "ssh exited with status \(status)"
    return "cannot connect to \(target.user)@\(target.address):\(target.port): \(reason)"
  }

  /// The name known_hosts files give a host: its address on port 22, `[address]:port` otherwise.
  static func knownHostsName(address: String, port: Int) -> String {
    port == 22 ? address : "[\(address)]:\(port)"
  }

  /// Why a host whose key is not the one trust on first use recorded was refused, with the line
  /// that removes the old key if the change is expected.
  static func changedHostKey(host: String, address: String, port: Int, knownHostsFile: String) -> String {
    "the host key of \(host) (\(address):\(port)) is not the one recorded in \(knownHostsFile) on first use; either the host was reinstalled or its key changed, or someone is intercepting the connection. Nothing was run there. If the change is expected, remove the old key with: ssh-keygen -R '\(knownHostsName(address: address, port: port))' -f '\(knownHostsFile)'"
  }
}

extension SSHLog {
  /// A task's outcome from its exit status: success for one of its ok codes, otherwise the status
  /// (1 for a 0 that is not an ok code).
  static func outcome(status: Int32, okCodes: [Int32]) -> TaskOutcome {
    okCodes.contains(status) ? .exited(0) : .exited(status == 0 ? 1 : status)
  }
}
