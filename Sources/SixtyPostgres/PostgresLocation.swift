import Foundation

/// Where a PostgreSQL database is and how to reach it, from a `postgresql://` URL as libpq
/// spells it: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE?sslmode=…`.
///
/// Query parameters understood: `sslmode` (disable, allow, prefer, require, verify-ca,
/// verify-full; libpq's default is prefer), `sslrootcert` (a PEM file of trusted CAs),
/// `host` (a directory holding the server's Unix socket, as libpq takes it), `password_file`
/// (a file whose first line is the password), `application_name` and `connect_timeout`
/// (seconds). Any other parameter is refused, so a misspelt `sslmode` is not silently ignored.
///
/// The password comes from, in order: the URL, `password_file` (the parameter or the caller's),
/// `PGPASSWORD`. It is never part of `description`.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
  public enum SSLMode: String, Sendable, CaseIterable {
    case disable, allow, prefer, require
    case verifyCA = "verify-ca"
    case verifyFull = "verify-full"
  }

  public var host: String
  public var port: Int
  /// The socket file, when the server is reached through a Unix socket.
  public var unixSocketPath: String?
  public var user: String
  public var database: String
  public var sslMode: SSLMode
  public var sslRootCert: String?
  public var applicationName: String
  public var connectTimeout: Double
  /// Never printed.
  public var password: String?

  /// Whether `text` names a PostgreSQL database rather than a file.
  public static func isURL(_ text: String) -> Bool {
    text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
  }

  /// The URL without its password, for messages and records.
  public var description: String {
    var text = "postgresql://\(Self.encode(user))@"
    if unixSocketPath != nil {
      text += "/\(Self.encode(database))?host=\(Self.encode(socketDirectory))"
      if port != 5432 { text += "&port=\(port)" }
      return text
    }
    text += host.contains(":") ? "[\(host)]" : host
    if port != 5432 { text += ":\(port)" }
    text += "/\(Self.encode(database))"
    if sslMode != .prefer { text += "?sslmode=\(sslMode.rawValue)" }
    return text
  }

  private var socketDirectory: String {
    guard let path = unixSocketPath, let slash = path.lastIndex(of: "/") else { return "" }
    return String(path[..<slash])
  }

  public struct Failure: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
  }

  /// Reads `text` (a URL).
  /// - Parameters:
  ///   - origin: where the URL came from, for messages ("--history", "broker.yml:3:8").
  ///   - passwordFile: a password file named outside the URL (broker.yml's `password_file`).
  ///   - environment: where `PGPASSWORD`, `PGUSER`, `PGSSLMODE` and `USER` are looked up.
  public static func parse(
    _ text: String, origin: String, passwordFile: String? = nil,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws(Failure) -> PostgresLocation {
    func fail(_ problem: String) -> Failure {
      Failure("\(origin): \(problem); expected postgresql://USER@HOST[:PORT]/DATABASE[?sslmode=MODE].")
    }
    guard text.utf8.count <= 4096 else { throw fail("the database URL is longer than 4096 bytes") }
    guard text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
      throw fail(
        "the database URL has spaces, control characters or non-ASCII characters (percent-encode them)")
    }
    var rest: Substring
    if text.hasPrefix("postgresql://") {
      rest = text.dropFirst("postgresql://".count)
    } else if text.hasPrefix("postgres://") {
      rest = text.dropFirst("postgres://".count)
    } else {
      throw fail("'\(text)' is not a postgresql:// URL")
    }
    var query: [(String, String)] = []
    if let mark = rest.firstIndex(of: "?") {
      for pair in rest[rest.index(after: mark)...].split(separator: "&", omittingEmptySubsequences: true) {
        let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let name = decode(parts[0]), let value = decode(parts[1]) else {
          throw fail("the parameter '\(pair)' is not NAME=VALUE with valid percent-encoding")
        }
        query.append((name, value))
      }
      rest = rest[..<mark]
    }
    var authority = rest
    var path = ""
    if let slash = rest.firstIndex(of: "/") {
      authority = rest[..<slash]
      path = String(rest[rest.index(after: slash)...])
    }
    var userInfo: Substring?
    if let at = authority.lastIndex(of: "@") {
      userInfo = authority[..<at]
      authority = authority[authority.index(after: at)...]
    }
    var location = PostgresLocation(
      host: "", port: 5432, unixSocketPath: nil,
      user: environment["PGUSER"] ?? environment["USER"] ?? "postgres", database: "", sslMode: .prefer,
      sslRootCert: nil, applicationName: "sixty", connectTimeout: 10, password: nil)
    if let mode = environment["PGSSLMODE"], let parsed = SSLMode(rawValue: mode) { location.sslMode = parsed }
    if let userInfo {
      let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
      guard let user = decode(parts[0]), !user.isEmpty else {
        throw fail("the user name is empty or badly encoded")
      }
      location.user = user
      if parts.count == 2 {
        guard let password = decode(parts[1]) else { throw fail("the password is badly percent-encoded") }
        location.password = password
      }
    }
    // Host and port: [v6]:port, name:port or name.
    var hostText = authority
    if hostText.hasPrefix("[") {
      guard let close = hostText.firstIndex(of: "]") else { throw fail("an IPv6 address lacks its ']'") }
      location.host = String(hostText[hostText.index(after: hostText.startIndex)..<close])
      hostText = hostText[hostText.index(after: close)...]
      if !hostText.isEmpty {
        guard hostText.hasPrefix(":") else { throw fail("unexpected text after the IPv6 address") }
        location.port = try port(String(hostText.dropFirst()), fail)
      }
    } else if let colon = hostText.lastIndex(of: ":") {
      location.host = String(hostText[..<colon])
      location.port = try port(String(hostText[hostText.index(after: colon)...]), fail)
    } else {
      location.host = String(hostText)
    }
    guard let database = decode(Substring(path)) else {
      throw fail("the database name is badly percent-encoded")
    }
    location.database = database.isEmpty ? location.user : database
    var passwordFile = passwordFile
    var socketDirectory: String?
    for (name, value) in query {
      switch name {
      case "sslmode":
        guard let mode = SSLMode(rawValue: value) else {
          throw fail(
            "sslmode is '\(value)'; it is one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        location.sslMode = mode
      case "sslrootcert": location.sslRootCert = value
      case "password_file", "passfile": passwordFile = value
      case "host":
        guard value.hasPrefix("/") else {
          throw fail("the host parameter must be a socket directory (an absolute path)")
        }
        socketDirectory = value
      case "port": location.port = try port(value, fail)
      case "application_name": location.applicationName = value
      case "connect_timeout":
        guard let seconds = Double(value), seconds > 0, seconds <= 600 else {
          throw fail("connect_timeout is '\(value)'; expected seconds between 1 and 600")
        }
        location.connectTimeout = seconds
      case "user": location.user = value
      case "dbname": location.database = value
      default:
        throw fail(
          "the parameter '\(name)' is not one Sixty understands (sslmode, sslrootcert, password_file, host, port, application_name, connect_timeout)"
        )
      }
    }
    if let socketDirectory {
      location.unixSocketPath = socketDirectory + "/.s.PGSQL.\(location.port)"
      if location.host.isEmpty { location.host = "localhost" }
    } else if location.host.isEmpty {
      throw fail("the URL names no host")
    }
    if location.password == nil, let passwordFile {
      location.password = try readPassword(passwordFile, origin: origin)
    }
    if location.password == nil, let password = environment["PGPASSWORD"] { location.password = password }
    return location
  }

  static func port(_ text: String, _ fail: (String) -> Failure) throws(Failure) -> Int {
    guard let port = Int(text), (1...65535).contains(port) else {
      throw fail("the port '\(text)' is not 1–65535")
    }
    return port
  }

  /// The first line of `path`, which must not be readable by others.
  static func readPassword(_ path: String, origin: String) throws(Failure) -> String {
    var info = stat()
    guard stat(path, &info) == 0 else {
      throw Failure(
        "\(origin): cannot read the password file '\(path)': \(String(cString: strerror(errno))).")
    }
    guard info.st_size <= 4096 else {
      throw Failure("\(origin): the password file '\(path)' is over 4096 bytes; expected one line.")
    }
    guard let data = FileManager.default.contents(atPath: path),
      let text = String(data: data, encoding: .utf8)
    else {
      throw Failure("\(origin): cannot read the password file '\(path)' as UTF-8 text.")
    }
    let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    let password = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
    guard !password.isEmpty else { throw Failure("\(origin): the password file '\(path)' is empty.") }
    return password
  }

  static func decode(_ text: Substring) -> String? { String(text).removingPercentEncoding }

  static func encode(_ text: String) -> String {
    text.addingPercentEncoding(
      withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~/"))) ?? text
  }
}
