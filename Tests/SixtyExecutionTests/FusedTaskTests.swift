import Foundation
import SixtyScheduling
import Testing

@testable import SixtyExecution
@testable import SixtyPlanning

/// A host's only task runs as its master connection's own session. These tests use a stand-in
/// `ssh` that counts its runs, prints, and exits at once, like a quick task on a loaded machine.
@Suite struct FusedTaskTests {
  let dir: String

  init() throws {
    dir =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-fused-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let fakeSSH = """
      #!/bin/sh
      # One line per run, then the task's output; the session ends before anyone asks for it.
      here="$(dirname "$0")"
      echo run >> "$here/runs"
      if [ -f "$here/delay" ]; then sleep "$(cat "$here/delay")"; fi
      echo hello
      exit 3
      """
    // Written through a close-on-exec descriptor: a child that other tests start meanwhile
    // must not hold it open for writing, or running it fails with "Text file busy".
    let fd = open(dir + "/ssh", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    try #require(fd >= 0)
    let bytes = Array(fakeSSH.utf8)
    #expect(write(fd, bytes, bytes.count) == bytes.count)
    close(fd)
  }

  func executor() -> SSHExecutor {
    SSHExecutor(
      targets: [
        "a": ExecutionTarget(
          address: "127.0.0.9", port: 22, user: "ops",
          tasks: [RenderedTask(action: .command(["true"]), env: [], cwd: nil)],
          become: [nil], okCodes: [[0, 3]])
      ], runDirectory: dir, keyPath: dir + "/key", hostKeyPolicy: .off, ssh: dir + "/ssh")
  }

  func runs() -> Int {
    ((try? String(contentsOfFile: dir + "/runs", encoding: .utf8)) ?? "").split(separator: "\n").count
  }

  /// The task ended (and its master with it) before the scheduler asked for it: asking later
  /// gets that outcome, and never starts the task a second time over a new login.
  @Test func aTaskThatEndsBeforeItIsAskedForRunsOnce() async throws {
    let ssh = executor()
    let host = ScheduledHost(name: "a", user: "ops", tasks: [ScheduledTask(name: "t")])
    let captured = Captures()
    ssh.onCapture = { captured.add($0) }
    let connected = await withCheckedContinuation { done in
      ssh.connect(host: host) { done.resume(returning: $0) }
    }
    #expect(connected == .authenticated)
    // The master has exited by now; wait a little longer than a loaded scheduler might.
    try await Task.sleep(for: .milliseconds(300))
    let outcome = await withCheckedContinuation { done in
      ssh.run(host: host, task: 0) { done.resume(returning: $0) }
    }
    #expect(outcome == .exited(0))
    #expect(captured.all.map { String(decoding: $0.stdout.bytes, as: UTF8.self) } == ["hello\n"])
    #expect(captured.all.map(\.status) == [3])
    try await Task.sleep(for: .milliseconds(300))
    #expect(runs() == 1)
    ssh.closeAll()
    try? FileManager.default.removeItem(atPath: dir)
  }

  /// The usual order: the scheduler asks while the task still runs; the outcome comes once.
  /// (The stand-in makes no control socket, so its exit, not 255, is what says it logged in.)
  @Test func aTaskAskedForWhileRunningIsDeliveredOnce() async throws {
    try "0.5".write(toFile: dir + "/delay", atomically: true, encoding: .utf8)
    let ssh = executor()
    let host = ScheduledHost(name: "a", user: "ops", tasks: [ScheduledTask(name: "t")])
    let captured = Captures()
    ssh.onCapture = { captured.add($0) }
    let connected = await withCheckedContinuation { done in
      ssh.connect(host: host) { done.resume(returning: $0) }
    }
    #expect(connected == .authenticated)
    let outcome = await withCheckedContinuation { done in
      ssh.run(host: host, task: 0) { done.resume(returning: $0) }
    }
    #expect(outcome == .exited(0))
    #expect(captured.all.count == 1)
    #expect(runs() == 1)
    ssh.closeAll()
    try? FileManager.default.removeItem(atPath: dir)
  }
}

final class Captures: @unchecked Sendable {
  private let lock = NSLock()
  private var captures: [TaskCapture] = []
  func add(_ capture: TaskCapture) { lock.withLock { captures.append(capture) } }
  var all: [TaskCapture] { lock.withLock { captures } }
}
