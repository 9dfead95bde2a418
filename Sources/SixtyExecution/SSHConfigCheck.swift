import Foundation

/// Whether the built-in SSH client would connect as OpenSSH's `ssh` would: only when the
/// ssh_config files (the user's `~/.ssh/config`, `/etc/ssh/ssh_config` and what they `Include`)
/// set nothing that changes where or how ssh connects. Any other directive, in any `Host` or
/// `Match` block, keeps OpenSSH for the run, so users' ssh_config habits (bastions, ports,
/// identities, algorithms) always hold.
public struct SSHConfigCheck: Sendable, Equatable {
  /// Nil when the built-in client may be used; otherwise what needs OpenSSH (file:line: directive).
  public var needsOpenSSH: String?
  /// `SendEnv` patterns: the environment variables OpenSSH would send with each command.
  public var sendEnv: [String] = []

  /// Nothing that needs OpenSSH, no variables to send.
  public init() {}

  /// Directives that do not change the connection, or that Sixty's own options override.
  static let neutral: Set<String> = [
    "host", "match", "include", "sendenv", "hashknownhosts", "gssapiauthentication",
    "gssapidelegatecredentials", "visualhostkey", "checkhostip", "identitiesonly", "batchmode",
    "serveraliveinterval", "serveralivecountmax", "forwardx11", "forwardx11trusted", "forwardagent",
    "addkeystoagent", "connecttimeout", "loglevel", "updatehostkeys",
  ]

  /// At most this many files are read (Include loops end here).
  static let maximumFiles = 64

  /// Checks the user's and the system's files (the user's home from the password database, as
  /// OpenSSH does).
  public static func current() -> SSHConfigCheck {
    let home = home()
    return check(
      userConfig: home + "/.ssh/config", userBase: home + "/.ssh", systemConfig: "/etc/ssh/ssh_config")
  }

  /// This user's home directory from the password database (as OpenSSH takes it), else `$HOME`.
  static func home() -> String {
    if let entry = getpwuid(getuid()), let dir = entry.pointee.pw_dir { return String(cString: dir) }
    return ProcessInfo.processInfo.environment["HOME"] ?? "/root"
  }

  static func check(userConfig: String, userBase: String, systemConfig: String) -> SSHConfigCheck {
    var result = SSHConfigCheck()
    var files = 0
    var home = userBase
    if home.hasSuffix("/.ssh") { home.removeLast(5) }
    func read(_ path: String, base: String, depth: Int) {
      guard result.needsOpenSSH == nil else { return }
      files += 1
      guard files <= maximumFiles, depth <= 16 else {
        result.needsOpenSSH = "\(path): too many included files"
        return
      }
      guard let data = FileManager.default.contents(atPath: path) else { return }
      guard data.count <= 1 << 20 else {
        result.needsOpenSSH = "\(path): larger than 1 MiB"
        return
      }
      var number = 0
      for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
        number += 1
        let words = Self.words(Array(line))
        guard let first = words.first, first.first != "#" else { continue }
        let keyword = first.lowercased()
        if !neutral.contains(keyword) {
          result.needsOpenSSH = "\(path):\(number) sets \(first)"
          return
        }
        switch keyword {
        case "sendenv": result.sendEnv += words.dropFirst()
        case "include":
          for argument in words.dropFirst() {
            var pattern = argument
            if pattern.hasPrefix("~/") {
              pattern = home + pattern.dropFirst()
            } else if !pattern.hasPrefix("/") {
              pattern = base + "/" + pattern
            }
            for match in Self.glob(pattern) { read(match, base: base, depth: depth + 1) }
          }
        default: break
        }
        if result.needsOpenSSH != nil { return }
      }
    }
    read(userConfig, base: userBase, depth: 0)
    read(systemConfig, base: "/etc/ssh", depth: 0)
    return result
  }

  /// A line's words: split on spaces, tabs and one `=` after the keyword; double quotes group.
  static func words(_ line: [UInt8]) -> [String] {
    var words: [String] = []
    var current: [UInt8] = []
    var quoted = false
    var inWord = false
    for byte in line {
      if byte == UInt8(ascii: "\"") {
        quoted.toggle()
        inWord = true
      } else if !quoted,
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r")
          || (byte == UInt8(ascii: "=") && words.isEmpty)
      {
        if inWord { words.append(String(decoding: current, as: UTF8.self)) }
        current = []
        inWord = false
      } else {
        current.append(byte)
        inWord = true
      }
    }
    if inWord { words.append(String(decoding: current, as: UTF8.self)) }
    return words
  }

  static func glob(_ pattern: String) -> [String] {
    var result = glob_t()
    defer { globfree(&result) }
    guard Foundation.glob(pattern, 0, nil, &result) == 0 else { return [] }
    return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }
  }

  /// The variables of `environment` that `SendEnv` patterns name (OpenSSH's wildcards; `-NAME`
  /// removes earlier ones), in name order.
  public func environment(_ environment: [String: String]) -> [(String, String)] {
    var names: Set<String> = []
    for pattern in sendEnv {
      if pattern.hasPrefix("-") {
        let remove = Array(pattern.dropFirst().utf8)
        names = names.filter { !KnownHosts.wildcard(remove, Array($0.utf8)) }
      } else {
        for name in environment.keys where KnownHosts.wildcard(Array(pattern.utf8), Array(name.utf8)) {
          names.insert(name)
        }
      }
    }
    return names.sorted().compactMap { name in environment[name].map { (name, $0) } }
  }
}
