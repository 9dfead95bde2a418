import Foundation

/// A background process started by a test and stopped by its pid.
final class LocalProcess: @unchecked Sendable {
  let pid: pid_t
  let logPath: String
  // `lock` protects `exited`.
  private let lock = NSLock()
  private var exited = false
  private var status: Int32 = 0

  /// The exit status once the process has exited (128+signal if killed).
  var exitStatus: Int32? {
    guard !isRunning else { return nil }
    return lock.withLock { Spawn.decode(status) }
  }

  /// Set for wrappers (like faketime) that run the real program as their child.
  let stopsChildren: Bool

  init(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], logPath: String,
    stopsChildren: Bool = false
  ) throws {
    self.stopsChildren = stopsChildren
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    let fd = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw Spawn.Failure(description: "cannot create \(logPath)") }
    defer { close(fd) }
    self.logPath = logPath
    pid = try Spawn.lock.withLock {
      try Spawn.start(executable, arguments, environment: env, directory: nil, stdout: fd, stderr: fd)
    }
  }

  var isRunning: Bool {
    lock.withLock {
      if exited { return false }
      if waitpid(pid, &status, WNOHANG) == pid { exited = true }
      return !exited
    }
  }

  /// The pids of this process's direct children (from /proc).
  var children: [pid_t] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
      guard let pid = pid_t(entry),
        let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
      else { return nil }
      let fields = stat[stat.index(after: close)...].split(separator: " ")
      return fields.count > 1 && pid_t(fields[1]) == self.pid ? pid : nil
    }
  }

  /// SIGTERM, then SIGKILL after a grace period; always reaped. A wrapper's children are killed
  /// first, by their pids.
  func stop() {
    if stopsChildren, isRunning {
      for child in children { kill(child, SIGKILL) }
      // A wrapper ends once its child has; let it, so that it cleans up after itself (faketime
      // removes its shared-memory files under /dev/shm) before it is signalled.
      for _ in 0..<50 where isRunning { usleep(100_000) }
    }
    guard isRunning else { return }
    kill(pid, SIGTERM)
    for _ in 0..<50 where isRunning { usleep(100_000) }
    if isRunning {
      kill(pid, SIGKILL)
      lock.withLock {
        _ = waitpid(pid, &status, 0)
        exited = true
      }
    }
  }

  deinit { stop() }

  var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

  /// A TCP port on 127.0.0.1 that was free a moment ago.
  /// A loopback port nothing listens on, never one this process handed out before: the suites
  /// run in parallel, and two fleets given the same port would have one sshd fail to bind while
  /// the other's clients reached the wrong host.
  static func freePort() -> Int {
    while true {
      let port = unusedPort()
      if HandedOutPorts.shared.claim(port) { return port }
    }
  }

  final class HandedOutPorts: @unchecked Sendable {
    static let shared = HandedOutPorts()
    // `lock` protects `ports`.
    private let lock = NSLock()
    private var ports: Set<Int> = []
    func claim(_ port: Int) -> Bool { lock.withLock { ports.insert(port).inserted } }
  }

  private static func unusedPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
  }

  /// Waits until something accepts TCP connections on `address`:`port`.
  static func waitForPort(_ port: Int, address host: String = "127.0.0.1", timeout: TimeInterval = 20) -> Bool
  {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = inet_addr(host)
      address.sin_port = in_port_t(UInt16(port).bigEndian)
      let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      close(fd)
      if result == 0 { return true }
      usleep(100_000)
    }
    return false
  }

  /// The full path of a program on PATH.
  static func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
      let path = "\(dir)/\(name)"
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
  }
}
