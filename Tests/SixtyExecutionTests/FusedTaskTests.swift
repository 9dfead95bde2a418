import Foundation
import SixtyScheduler
import Testing

@testable import SixtyExecution
@testable import SixtyPlanning

/// A host's only task runs as its master connection's own session. These tests use a stand-in
/// `ssh` that counts its runs, prints and exits: at once (like a quick task on a loaded
/// machine), or, with a `socket` file present, after making its control socket (the sign of
/// authentication) and waiting half a second.
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
      for a in "$@"; do case "$a" in ControlPath=*) sock="${a#ControlPath=}";; esac; done
      if [ -f "$here/linger" ]; then
        # A master that authenticates (makes its socket) and then stays for 30 s.
        exec python3 -c 'import socket, sys, time; socket.socket(socket.AF_UNIX).bind(sys.argv[1]); time.sleep(30)' "$sock"
      fi
      if [ -f "$here/socket" ]; then
        python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
        sleep 0.5
      fi
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
          tasks: [
            ExecutionTask(
              rendered: RenderedTask(action: .command(["true"]), env: [], cwd: nil), okCodes: [0, 3])
          ])
      ], runDirectory: dir, keyPath: dir + "/key", hostKeyPolicy: .off, ssh: dir + "/ssh")
  }

  func runs() -> Int {
    ((try? String(contentsOfFile: dir + "/runs", encoding: .utf8)) ?? "").split(separator: "\n").count
  }

  /// Connects, waits `pause` (nil: none), then asks for the task: the outcome, every capture.
  func connectThenRun(pause: Duration?) async throws -> (TaskOutcome, [TaskCapture]) {
    let ssh = executor()
    let host = ScheduledHost(name: "a", user: "ops", tasks: [ScheduledTask(name: "t")])
    let captured = Captures()
    ssh.onCapture = { captured.add($0) }
    let connected = await withCheckedContinuation { done in
      ssh.connect(host: host) { done.resume(returning: $0) }
    }
    #expect(connected == .authenticated)
    if let pause { try await Task.sleep(for: pause) }
    let outcome = await withCheckedContinuation { done in
      ssh.run(host: host, task: 0) { done.resume(returning: $0) }
    }
    try await Task.sleep(for: .milliseconds(300))  // a second run, if any, would show by now
    await ssh.close()
    return (outcome, captured.all)
  }

  /// The task ended (and its master with it) before the scheduler asked for it: asking later
  /// gets that outcome, and never starts the task a second time over a new login.
  @Test func aTaskThatEndsBeforeItIsAskedForRunsOnce() async throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (outcome, captures) = try await connectThenRun(pause: .milliseconds(300))
    #expect(outcome == .exited(0))
    #expect(captures.map { String(decoding: $0.stdout.bytes, as: UTF8.self) } == ["hello\n"])
    #expect(captures.map(\.status) == [3])
    #expect(runs() == 1)
  }

  /// The usual order: authenticated (socket seen) while the task runs, asked for at once; the
  /// outcome comes once, when the task ends.
  @Test func aTaskAskedForWhileRunningIsDeliveredOnce() async throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "".write(toFile: dir + "/socket", atomically: true, encoding: .utf8)
    let (outcome, captures) = try await connectThenRun(pause: nil)
    #expect(outcome == .exited(0))
    #expect(captures.count == 1)
    #expect(runs() == 1)
  }

  /// The control socket is seen through inotify on the run directory, not by polling: with the
  /// poll an hour apart, a master that makes its socket and stays is seen as authenticated long
  /// before it would exit (30 s).
  @Test func theSocketIsSeenThroughInotify() async throws {
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "".write(toFile: dir + "/linger", atomically: true, encoding: .utf8)
    let ssh = executor()
    ssh.sockets.notifiedPollInterval = 3_600_000
    let host = ScheduledHost(name: "a", user: "ops", tasks: [ScheduledTask(name: "t")])
    let start = ContinuousClock.now
    // The time is taken in the callback, on the executor's queue: a test that blocks the
    // cooperative pool meanwhile must not count against the watcher.
    let (outcome, seen) = await withCheckedContinuation { done in
      ssh.connect(host: host) { done.resume(returning: ($0, ContinuousClock.now)) }
    }
    #expect(seen - start < .seconds(20), "not seen while the master lived")
    #expect(outcome == .authenticated)
    await ssh.close()
  }
}

final class Outcome: @unchecked Sendable {
  private let lock = NSLock()
  private var result: ConnectOutcome?
  func set(_ value: ConnectOutcome) { lock.withLock { result = value } }
  var value: ConnectOutcome? { lock.withLock { result } }
}

final class Captures: @unchecked Sendable {
  private let lock = NSLock()
  private var captures: [TaskCapture] = []
  func add(_ capture: TaskCapture) { lock.withLock { captures.append(capture) } }
  var all: [TaskCapture] { lock.withLock { captures } }
}
