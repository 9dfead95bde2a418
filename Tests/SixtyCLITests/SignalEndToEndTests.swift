import Foundation
import Testing

/// A TCP listener that accepts connections and never answers: a broker or an sshd that hangs.
final class SilentListener: @unchecked Sendable {
  let fd: Int32
  let port: Int
  private let lock = NSLock()
  private var accepted: [Int32] = []
  private var closed = false

  init() throws {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var yes: Int32 = 1
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
    }
    guard bound == 0, listen(listener, 64) == 0 else {
      close(listener)
      throw Spawn.Failure(description: "cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
    }
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
    }
    fd = listener
    port = Int(UInt16(bigEndian: address.sin_port))
    let thread = Thread { [self] in
      while true {
        let client = accept(fd, nil, nil)
        if client < 0 { return }
        let keep = lock.withLock {
          if closed { return false }
          accepted.append(client)
          return true
        }
        if !keep { Glibc.close(client) }
      }
    }
    thread.start()
  }

  var connections: Int { lock.withLock { accepted.count } }

  func stop() {
    let all: [Int32] = lock.withLock {
      closed = true
      return accepted
    }
    shutdown(fd, Int32(SHUT_RDWR))
    close(fd)
    for client in all { close(client) }
  }
}

/// SIGINT and SIGTERM at every phase of a run: waiting for a host lock, pushing a key,
/// connecting, running a task, writing the report. Each time the run ends promptly with exit 4,
/// its key directory is empty, no ssh process of it is left, and the history says what happened.
@Suite(.serialized) struct SignalEndToEndTests {
  enum Phase: String, CaseIterable, Sendable { case lock, push, connect, task, report }

  struct Setup {
    var arguments: [String]
    var keyDir: String
    var environment: [String: String]
    var cleanup: () -> Void = {}
    /// True once the run is in the phase under test.
    var ready: (LocalProcess) -> Bool
  }

  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  func processes(mentioning text: String) -> [String] { ProcessScan.processes(mentioning: text) }

  func running(_ command: String) -> Bool {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).contains { entry in
      guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return false }
      return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).hasPrefix(command)
    }
  }

  func setup(_ phase: Phase, fleet: LocalFleet, signal: Int32) throws -> Setup {
    let keyDir = fleet.directory + "/keys"
    try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
    var env = fleet.environment
    env["SIXTY_KEY_DIR"] = keyDir
    let host = fleet.hosts[0]
    func inventory(port: Int) throws -> String {
      try write(
        "hosts:\n  web-1: {address: 127.0.0.1, port: \(port), user: \(fleet.user), instance_id: \(host.instanceID)}\n",
        fleet.directory + "/inventory-\(port).yml")
    }
    let sleeper = "31\(signal == SIGINT ? 1 : 2)"
    let short = "3.1\(signal == SIGINT ? 1 : 2)"
    let quick = try write(
      "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
      fleet.directory + "/quick.yml")
    let report = fleet.directory + "/report.json"
    switch phase {
    case .lock:
      // Another run holds the host and keeps it busy.
      let long = try write(
        "name: long\nhosts: all\ntasks:\n  - name: wait\n    command: [sleep, \"\(sleeper)9\"]\n",
        fleet.directory + "/long.yml")
      let holder = try LocalProcess(
        SixtyBinary.path,
        ["run", long, "-i", try inventory(port: host.port), "--endpoint", fleet.endpoint, "--no-progress"],
        environment: fleet.environment, logPath: fleet.directory + "/holder.log")
      let deadline = Date().addingTimeInterval(20)
      while !running("sleep \(sleeper)9") && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
      return Setup(
        arguments: [
          "run", quick, "-i", try inventory(port: host.port), "--endpoint", fleet.endpoint, "--report",
          report,
        ], keyDir: keyDir, environment: env, cleanup: { holder.stop() },
        ready: { $0.log.contains("sixty: waiting up to") })
    case .push:
      let broker = try SilentListener()
      return Setup(
        arguments: [
          "run", quick, "-i", try inventory(port: host.port), "--endpoint", "http://127.0.0.1:\(broker.port)",
          "--report", report,
        ], keyDir: keyDir, environment: env, cleanup: { broker.stop() },
        // The play has started (the endpoint's capabilities were asked before it, given up after
        // 2 s, perhaps before a connection was made) and a connection is open: the push waits.
        ready: { $0.log.contains("== play: quick") && broker.connections > 0 })
    case .connect:
      let sshd = try SilentListener()
      return Setup(
        arguments: [
          "run", quick, "-i", try inventory(port: sshd.port), "--endpoint", fleet.endpoint, "--report",
          report,
        ], keyDir: keyDir, environment: env, cleanup: { sshd.stop() }, ready: { _ in sshd.connections > 0 })
    case .task:
      let two = try write(
        "name: two\nhosts: all\ntasks:\n  - name: wait\n    command: [sleep, \"\(short)\"]\n  - name: after\n    command: [echo, after]\n",
        fleet.directory + "/two.yml")
      return Setup(
        arguments: [
          "run", two, "-i", try inventory(port: host.port), "--endpoint", fleet.endpoint, "--report", report,
        ], keyDir: keyDir, environment: env, ready: { _ in running("sleep \(short)") })
    case .report:
      // The report goes to a FIFO nobody reads: writing it blocks.
      let fifo = fleet.directory + "/report.fifo"
      #expect(mkfifo(fifo, 0o600) == 0)
      return Setup(
        arguments: [
          "run", quick, "-i", try inventory(port: host.port), "--endpoint", fleet.endpoint, "--report", fifo,
        ], keyDir: keyDir, environment: env, ready: { $0.log.contains("RECAP") })
    }
  }

  static let cases: [(Phase, Int32)] = Phase.allCases.flatMap { [($0, SIGINT), ($0, SIGTERM)] }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"), arguments: cases)
  func aSignalAtEveryPhaseEndsTheRunCleanly(phase: Phase, signal: Int32) throws {
    let name = "\(phase.rawValue) + \(signal == SIGINT ? "SIGINT" : "SIGTERM")"
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let setup = try setup(phase, fleet: fleet, signal: signal)
      defer { setup.cleanup() }
      let run = try LocalProcess(
        SixtyBinary.path, setup.arguments + ["--no-progress"], environment: setup.environment,
        logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      var deadline = Date().addingTimeInterval(30)
      while !setup.ready(run) && run.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
      try #require(setup.ready(run), "\(name): the run never reached the phase: \(run.log)")
      #expect(run.isRunning, "\(name): \(run.log)")
      let signalled = Date()
      kill(run.pid, signal)
      // A first Ctrl-C lets a running task finish (it sleeps 3 s); everything else stops at once.
      deadline = Date().addingTimeInterval(15)
      while run.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
      let took = Date().timeIntervalSince(signalled)
      print("\(name): stopped \(String(format: "%.2f", took)) s after the signal")
      #expect(!run.isRunning, "\(name): still running 15 s after the signal: \(run.log)")
      let log = run.log
      #expect(run.exitStatus == 4, "\(name): \(log)")
      #expect(took < (phase == .task && signal == SIGINT ? 6 : 3), "\(name): took \(took)s to stop")
      #expect(
        (try? FileManager.default.contentsOfDirectory(atPath: setup.keyDir))?.isEmpty ?? true,
        "\(name): the key directory is not empty")
      // No ssh client of the run is left (they name the run's key directory).
      deadline = Date().addingTimeInterval(5)
      while !processes(mentioning: setup.keyDir).isEmpty && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.1)
      }
      #expect(processes(mentioning: setup.keyDir).isEmpty, "\(name): \(processes(mentioning: setup.keyDir))")
      // What the history says.
      let listed = try SixtyBinary.run(["runs", "list", "--format", "json"], environment: fleet.environment)
      let runs = try #require(
        try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]],
        "\(listed.stdout)"
      )
      let this = try #require(
        runs.first { ($0["playbook"] as? String)?.contains("long.yml") == false }, "\(runs)")
      #expect(this["status"] as? String == "aborted", "\(name): \(this)")
      switch phase {
      case .lock:
        #expect(log.contains("interrupted while waiting for host web-1"), "\(log)")
        #expect(!log.contains("== play:"), "\(name): a play started: \(log)")
      case .push, .connect:
        #expect(log.contains("web-1") && log.contains("not started"), "\(name): \(log)")
        #expect(log.contains("run interrupted"), "\(name): \(log)")
      case .task:
        if signal == SIGINT {
          // The running task finished; the next one never started.
          #expect(log.contains("web-1 | wait | exit 0"), "\(log)")
          #expect(!log.contains("web-1 | after"), "\(log)")
        } else {
          #expect(!log.contains("web-1 | wait | exit 0"), "\(log)")
        }
        #expect(log.contains("run interrupted"), "\(name): \(log)")
      case .report:
        #expect(log.contains("interrupted while writing the reports"), "\(log)")
        #expect(log.contains("web-1 | hi | exit 0"), "\(log)")
      }
    }
  }

  /// SIGKILL leaves Sixty no chance to clean up: its ssh masters must still end within seconds
  /// (the reaper's process group), so that their control sockets can no longer run commands on
  /// hosts after the key's window, when a fresh login with the key is already refused.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func sigkillMidTaskLeavesNoMasterBehind() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let keyDir = fleet.directory + "/keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      var env = fleet.environment
      env["SIXTY_KEY_DIR"] = keyDir
      // Two tasks per host, so each host has a multiplexing master (`-M -N`) as well as a task
      // (OpenSSH's: the built-in client starts no process to leave behind).
      let playbook = try write(
        "name: long\nhosts: all\npolicy: {ssh_client: openssh}\ntasks:\n  - name: wait\n    command: [sleep, \"47.3\"]\n  - name: after\n    command: [echo, after]\n",
        fleet.directory + "/long.yml")
      let run = try LocalProcess(
        SixtyBinary.path,
        ["run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--no-progress"],
        environment: env, logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      var deadline = Date().addingTimeInterval(30)
      func masters() -> [String] { processes(mentioning: keyDir).filter { $0.contains(" -M ") } }
      while (masters().count < 2 || !running("sleep 47.3")) && run.isRunning && Date() < deadline {
        Thread.sleep(forTimeInterval: 0.05)
      }
      try #require(masters().count == 2, "the masters never came up: \(run.log)")
      let sockets = try FileManager.default.contentsOfDirectory(atPath: keyDir).flatMap { dir in
        ((try? FileManager.default.contentsOfDirectory(atPath: keyDir + "/" + dir)) ?? []).filter {
          $0.hasPrefix("c")
        }.map { keyDir + "/" + dir + "/" + $0 }
      }
      #expect(!sockets.isEmpty, "no control socket in \(keyDir)")
      kill(run.pid, SIGKILL)
      let killed = Date()
      deadline = Date().addingTimeInterval(10)
      while !processes(mentioning: keyDir).isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
      let took = Date().timeIntervalSince(killed)
      #expect(
        processes(mentioning: keyDir).isEmpty, "ssh outlived the runner: \(processes(mentioning: keyDir))")
      #expect(took < 5, "the ssh processes took \(took)s to end after SIGKILL")
      // No control socket runs anything any more.
      for socket in sockets {
        let check = try runProgram(
          "/usr/bin/ssh", ["-o", "ControlPath=\(socket)", "-O", "check", "-F", "/dev/null", "web"])
        #expect(check.status != 0, "the control socket \(socket) still answers")
      }
    }
  }
}
