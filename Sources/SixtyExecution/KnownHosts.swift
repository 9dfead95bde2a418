import Crypto
import Foundation
import SixtyCore
import SixtyPolicy

/// The built-in client's host key check, as OpenSSH's would be with Sixty's options: `off`
/// takes any key; `accept-new` checks Sixty's known_hosts file and records a host seen for the
/// first time; `strict` checks the user's and the system's known_hosts files and refuses a host
/// they do not know.
struct HostKeyCheck: Sendable {
  enum Mode: Sendable, Equatable {
    case off
    case acceptNew(file: String)
    case strict(files: [String])
  }

  var mode: Mode
  /// The host's name (for messages), address and port (what known_hosts lines name).
  var host: String
  var address: String
  var port: Int
  let writer: KnownHostsWriter

  /// The known_hosts name of the host: `address` on port 22, `[address]:port` otherwise.
  var entryName: String { SSHLog.knownHostsName(address: address, port: port) }

  /// Nil when the key (an OpenSSH public key line, `type base64`) is accepted.
  func verify(_ line: String) -> BuiltinSSHError? {
    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
    guard fields.count >= 2 else { return .hostKey("the host \(host) sent a key that cannot be read") }
    let (type, blob) = (String(fields[0]), String(fields[1]))
    let files: [String]
    switch mode {
    case .off: return nil
    case .acceptNew(let file): files = [file]
    case .strict(let list): files = list
    }
    var sameType = false
    var otherTypes: Set<String> = []
    for file in files {
      for entry in KnownHosts.entries(file: file, name: entryName) {
        if entry.revoked {
          if entry.blob == blob {
            return .hostKey(
              "the host key of \(host) (\(address):\(port)) is marked @revoked in \(file); nothing was run there."
            )
          }
          continue
        }
        if entry.type == type {
          if entry.blob == blob { return nil }
          sameType = true
        } else {
          otherTypes.insert(entry.type)
        }
      }
    }
    switch mode {
    case .acceptNew(let file):
      if sameType {
        return .hostKey(SSHLog.changedHostKey(host: host, address: address, port: port, knownHostsFile: file))
      }
      if !otherTypes.isEmpty {
        return .useOpenSSH("\(file) knows \(host) by a \(otherTypes.sorted().joined(separator: ", ")) key")
      }
      // Only a name that cannot break the file's lines (an address as the inventory checks it).
      guard SafeText.isHostAddress(address) else {
        return .hostKey("the address of \(host) cannot be recorded in \(file); nothing was run there.")
      }
      // As OpenSSH does, a key that cannot be recorded (a full disk) is still taken this once:
      // the host is new either way, and the next run meets it as new again.
      _ = writer.append("\(entryName) \(type) \(blob)", to: file)
      return nil
    case .strict:
      if sameType {
        return .hostKey(
          "the host key of \(host) (\(address):\(port)) is not the one in the known_hosts files (\(files.joined(separator: ", "))); nothing was run there. Host key verification failed."
        )
      }
      if !otherTypes.isEmpty {
        return .useOpenSSH(
          "the known_hosts files know \(host) by a \(otherTypes.sorted().joined(separator: ", ")) key")
      }
      return .hostKey(
        "No \(type) host key is known for \(entryName) and you have requested strict checking. Host key verification failed."
      )
    case .off:
      return nil
    }
  }
}

/// Appends known_hosts lines: one write(2) of a whole line with O_APPEND, under a lock for this
/// process, so concurrent logins (and other processes appending the same way) never interleave.
final class KnownHostsWriter: Sendable {
  private let lock = NSLock()
  init() {}

  func append(_ line: String, to file: String) -> String? {
    lock.withLock {
      let fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
      guard fd >= 0 else { return String(cString: strerror(errno)) }
      defer { close(fd) }
      let bytes = Array((line + "\n").utf8)
      let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
      return written == bytes.count ? nil : String(cString: strerror(errno))
    }
  }
}

/// Reading OpenSSH known_hosts files: plain and hashed (`|1|salt|hash`) host fields, patterns
/// with `*`, `?` and `!`, and the `@revoked` marker (`@cert-authority` lines name host
/// certificate authorities, which the built-in client does not use, and are skipped).
enum KnownHosts {
  struct Entry: Equatable {
    var type: String
    var blob: String
    var revoked: Bool
  }

  /// At most this many bytes of a known_hosts file are read.
  static let maximumSize = 64 << 20

  /// The entries of `file` that name `name` (missing or unreadable files have none).
  static func entries(file: String, name: String) -> [Entry] {
    guard let data = FileManager.default.contents(atPath: file), data.count <= maximumSize else { return [] }
    return entries(text: Array(data), name: name)
  }

  static func entries(text: [UInt8], name: String) -> [Entry] {
    var found: [Entry] = []
    let lowered = Array(name.utf8).map(lower)
    for rawLine in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
      var fields = rawLine.split(whereSeparator: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") })
        .map { Array($0) }
      guard let first = fields.first, first.first != UInt8(ascii: "#") else { continue }
      var revoked = false
      if first.first == UInt8(ascii: "@") {
        let marker = String(decoding: first, as: UTF8.self)
        guard marker == "@revoked" else { continue }
        revoked = true
        fields.removeFirst()
      }
      guard fields.count >= 3 else { continue }
      guard matches(hosts: fields[0], name: lowered) else { continue }
      var blob = fields[2]
      if let cr = blob.last, cr == UInt8(ascii: "\r") { blob.removeLast() }
      found.append(
        Entry(
          type: String(decoding: fields[1], as: UTF8.self), blob: String(decoding: blob, as: UTF8.self),
          revoked: revoked))
    }
    return found
  }

  /// Whether a host field (a hashed name, or comma-separated patterns) names `name` (lowercase).
  static func matches(hosts field: [UInt8], name: [UInt8]) -> Bool {
    if field.starts(with: Array("|1|".utf8)) {
      let parts = field.split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: true)
      guard parts.count == 3,
        let salt = Data(base64Encoded: Data(parts[1])), let hash = Data(base64Encoded: Data(parts[2]))
      else { return false }
      let mac = HMAC<Insecure.SHA1>.authenticationCode(for: name, using: SymmetricKey(data: salt))
      return Data(mac) == hash
    }
    var positive = false
    for pattern in field.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) {
      if pattern.first == UInt8(ascii: "!") {
        if wildcard(Array(pattern.dropFirst()).map(lower), name) { return false }
      } else if wildcard(Array(pattern).map(lower), name) {
        positive = true
      }
    }
    return positive
  }

  static func lower(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
  }

  /// `*` and `?` wildcards, in linear time (the greedy algorithm with one backtrack point).
  static func wildcard(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
    var (p, t) = (0, 0)
    var star: Int?
    var mark = 0
    while t < text.count {
      if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
        p += 1
        t += 1
      } else if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
        star = p
        mark = t
        p += 1
      } else if let s = star {
        p = s + 1
        mark += 1
        t = mark
      } else {
        return false
      }
    }
    while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
    return p == pattern.count
  }
}
