import Foundation
import SixtyScheduler
import Testing

@testable import SixtyExecution
@testable import SixtyPlanning

/// OpenSSH 9.2's client loop can miss a SIGTERM that lands just before it sleeps in poll(2),
/// and then sleeps until ServerAliveInterval. This stand-in master misses its first SIGTERM on
/// purpose: it makes its control socket (so it counts as authenticated) and exits only on the
/// second SIGTERM.
@Suite struct MasterTerminationTests {
  @Test func aMasterThatMissesItsFirstSIGTERMIsSignalledAgain() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-term-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let fake = """
      #!/bin/sh
      for a in "$@"; do case "$a" in ControlPath=*) sock="${a#ControlPath=}";; esac; done
      first=1
      trap 'if [ $first = 1 ]; then first=0; echo missed >> "$(dirname "$0")/terms"; else date +%s.%N > "$(dirname "$0")/exited"; exit 0; fi' TERM
      python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
      while :; do sleep 0.05; done
      """
    // Close-on-exec, so no child of a concurrent test holds it open for writing.
    let fd = open(dir + "/ssh", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    try #require(fd >= 0)
    let bytes = Array(fake.utf8)
    #expect(write(fd, bytes, bytes.count) == bytes.count)
    close(fd)
    let task = RenderedTask(action: .command(["true"]), env: [], cwd: nil)
    let ssh = SSHExecutor(
      targets: [
        "a": ExecutionTarget(
          address: "127.0.0.9", port: 22, user: "ops",
          tasks: [ExecutionTask(rendered: task), ExecutionTask(rendered: task)])
      ], runDirectory: dir, keyPath: dir + "/key", hostKeyPolicy: .off, ssh: dir + "/ssh")
    // Two tasks: a master of its own (-N), not fused with a task.
    let host = ScheduledHost(
      name: "a", user: "ops", tasks: [ScheduledTask(name: "t1"), ScheduledTask(name: "t2")])
    let connected = await withCheckedContinuation { done in
      ssh.connect(host: host) { done.resume(returning: $0) }
    }
    #expect(connected == .authenticated)
    let start = Date()
    await ssh.close()  // waits for the master to exit, up to 5 s before SIGKILL
    // When the master exited, as it wrote: the test's own resumption after `close` may wait for
    // a thread of the cooperative pool, which other suites' blocking waits can hold for seconds.
    let exited = Double(
      ((try? String(contentsOfFile: dir + "/exited", encoding: .utf8)) ?? "")
        .trimmingCharacters(in: .whitespacesAndNewlines))
    let took =
      try #require(exited, "the master did not exit on a second SIGTERM") - start.timeIntervalSince1970
    #expect(took < 2, "the master exited \(took) s after close began")
    let terms = (try? String(contentsOfFile: dir + "/terms", encoding: .utf8)) ?? ""
    #expect(terms == "missed\n")
  }
}
