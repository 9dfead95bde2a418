import Foundation

/// A real PostgreSQL server from Debian's `postgresql` package, for the tests of this process:
/// `initdb` in a temporary directory, `postgres` run as the unprivileged `postgres` user when the
/// tests run as root, on a Unix socket and a loopback port, with password authentication over
/// TCP. Each test takes a database of its own (`database()`). The server is stopped by its pid
/// when the test process exits.
final class TestPostgres: @unchecked Sendable {
  static let user = "sixty"
  let password = "pw-\(UUID().uuidString)"
  let directory: String
  let socketDirectory: String
  let port: Int
  let process: LocalProcess
  let bin: String
  private let lock = NSLock()
  private var count = 0

  struct Unavailable: Error, CustomStringConvertible { var description: String }

  /// The one server of this test process, started on first use.
  static func shared() throws -> TestPostgres {
    try sharedLock.withLock {
      if let server = sharedServer { return server }
      let server = try TestPostgres()
      sharedServer = server
      atexit {
        guard let server = TestPostgres.sharedServer else { return }
        server.process.stop()
        try? FileManager.default.removeItem(atPath: server.directory)
      }
      return server
    }
  }
  nonisolated(unsafe) private static var sharedServer: TestPostgres?
  private static let sharedLock = NSLock()

  static var binDirectory: String? {
    let versions = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
      .compactMap { Int($0) }.sorted()
    return versions.reversed().map { "/usr/lib/postgresql/\($0)/bin" }
      .first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
  }

  /// The command prefix that runs a program as the server's user (nothing unless root).
  static var asServerUser: [String] {
    getuid() == 0 ? ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"] : []
  }

  init(fsync: Bool = false) throws {
    guard let bin = TestPostgres.binDirectory else {
      throw Unavailable(description: "PostgreSQL is not installed (run scripts/install-deps.sh --tests).")
    }
    self.bin = bin
    directory = "/tmp/sixty-pg-\(UUID().uuidString)"
    socketDirectory = directory + "/socket"
    try FileManager.default.createDirectory(
      atPath: socketDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
    let owner: [FileAttributeKey: Any] =
      getuid() == 0 ? [.ownerAccountName: "postgres", .groupOwnerAccountName: "postgres"] : [:]
    try FileManager.default.setAttributes(owner, ofItemAtPath: directory)
    try FileManager.default.setAttributes(owner, ofItemAtPath: socketDirectory)
    let passwordFile = directory + "/pwfile"
    try password.write(toFile: passwordFile, atomically: false, encoding: .utf8)
    try FileManager.default.setAttributes(
      owner.merging([.posixPermissions: 0o600]) { $1 }, ofItemAtPath: passwordFile)
    let prefix = TestPostgres.asServerUser
    let initdb = try runProgram(
      prefix.first ?? bin + "/initdb",
      Array(prefix.dropFirst()) + (prefix.isEmpty ? [] : [bin + "/initdb"]) + [
        "-D", directory + "/data", "-U", TestPostgres.user, "--pwfile", passwordFile, "--auth-local=trust",
        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
      ])
    guard initdb.status == 0 else {
      throw Unavailable(description: "initdb failed: \(initdb.stderr)\(initdb.stdout)")
    }
    var started: (LocalProcess, Int)?
    for _ in 0..<5 {
      let port = LocalProcess.freePort()
      let arguments =
        [
          bin + "/postgres", "-D", directory + "/data", "-k", socketDirectory, "-p", "\(port)",
          "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-c",
          "fsync=\(fsync ? "on" : "off")",
          "-c", "synchronous_commit=\(fsync ? "on" : "off")", "-c",
          "full_page_writes=\(fsync ? "on" : "off")",
          "-c", "shared_buffers=64MB",
        ]
      let process = try LocalProcess(
        prefix.first ?? arguments[0],
        Array(prefix.dropFirst()) + (prefix.isEmpty ? Array(arguments.dropFirst()) : arguments),
        logPath: directory + "/postgres-\(port).log")
      let deadline = Date().addingTimeInterval(60)
      var ready = false
      while Date() < deadline, process.isRunning {
        if process.log.contains("ready to accept connections") {
          ready = true
          break
        }
        usleep(50_000)
      }
      if ready {
        started = (process, port)
        break
      }
      process.stop()
      if !process.log.contains("Address already in use") {
        throw Unavailable(description: "postgres did not start: \(process.log)")
      }
    }
    guard let (process, port) = started else { throw Unavailable(description: "postgres found no free port") }
    self.process = process
    self.port = port
  }

  /// A new, empty database; its URL over TCP (password from `password`, not in the URL).
  func database(_ label: String = "t") throws -> String {
    let name = lock.withLock {
      count += 1
      return "\(label.lowercased().filter { $0.isLetter || $0.isNumber })_\(count)"
    }
    let psql = try runProgram(
      bin + "/psql",
      [
        "-h", socketDirectory, "-p", "\(port)", "-U", TestPostgres.user, "-d", "postgres", "-v",
        "ON_ERROR_STOP=1",
        "-c", "CREATE DATABASE \(name)",
      ])
    guard psql.status == 0 else { throw Unavailable(description: "CREATE DATABASE failed: \(psql.stderr)") }
    return "postgresql://\(TestPostgres.user)@127.0.0.1:\(port)/\(name)?sslmode=disable"
  }

  /// The same database reached through the Unix socket (no password needed there).
  func socketURL(_ tcpURL: String) -> String {
    let name = tcpURL.split(separator: "/").last.map { String($0.split(separator: "?")[0]) } ?? ""
    return "postgresql://\(TestPostgres.user)@/\(name)?host=\(socketDirectory)&port=\(port)"
  }

  /// Runs SQL in `database` (a URL from `database()`) and returns psql's unaligned output.
  func psql(_ url: String, _ sql: String) throws -> String {
    let name = url.split(separator: "/").last.map { String($0.split(separator: "?")[0]) } ?? ""
    let result = try runProgram(
      bin + "/psql",
      [
        "-h", socketDirectory, "-p", "\(port)", "-U", TestPostgres.user, "-d", name, "-v", "ON_ERROR_STOP=1",
        "-At", "-c", sql,
      ])
    guard result.status == 0 else { throw Unavailable(description: "psql failed: \(result.stderr)") }
    return result.stdout
  }

  /// The environment a sixty process needs to log in.
  var environment: [String: String] { ["PGPASSWORD": password] }
}
