import Crypto

#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

#if canImport(Glibc)
  import Glibc
#endif

/// `sixty-agent`'s configuration: a flat `key: value` file (a YAML subset, read without a YAML
/// library so the agent stays small and starts fast on every SSH login).
///
/// ```yaml
/// broker: https://broker.example.com:8600   # the broker's base URL
/// instance_id: i-0123456789abcdef0          # this host's id in the broker's registry
/// token_file: /etc/sixty/agent.token         # or token: "…" (at least 16 characters)
/// broker_public_key: 3q2+7w…=                # base64 Ed25519 key from `sixty broker public-key`
/// timeout: 3s                                # whole fetch, at most 5s
/// max_age: 60s                               # how old a signed list may be
/// syslog: true                               # also log to syslog (auth facility)
/// ```
public struct AgentConfig: Sendable {
  public var broker: URL
  public var instanceID: String
  public var token: String
  public var brokerPublicKey: Curve25519.Signing.PublicKey
  public var timeout: Double = 3
  public var maxAge: Int64 = 60
  public var syslog = true
  /// Whether the token was in the file itself (`token:`) rather than in `token_file`.
  public var tokenInline = false

  public static let defaultPath = "/etc/sixty/agent.yml"

  public struct Error: Swift.Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
  }

  /// Reads and parses the file at `path`. A file with the token inline must be readable by its
  /// owner only (the user sshd runs the agent as), as ssh demands of a private key.
  public static func load(path: String) throws(AgentConfig.Error) -> AgentConfig {
    let unreadable = Error(
      "cannot read the agent configuration \(path) (missing, unreadable, over 64 KB or not UTF-8).")
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw unreadable }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, info.st_size <= 65536 else { throw unreadable }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 16384)
    while true {
      let n = read(fd, &buffer, buffer.count)
      if n < 0 && errno == EINTR { continue }
      guard n >= 0 else { throw unreadable }
      if n == 0 { break }
      bytes += buffer[0..<n]
      guard bytes.count <= 65536 else { throw unreadable }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else { throw unreadable }
    let config = try parse(text, file: path)
    if config.tokenInline && info.st_mode & 0o044 != 0 {
      throw Error(
        "the agent configuration \(path) holds secrets inline (the agent token) and is readable by others (mode 0\(String(info.st_mode & 0o777, radix: 8))); chmod 600 it (owned by the user sshd runs the agent as) or use token_file."
      )
    }
    return config
  }

  static func seconds(_ text: String) -> Double? {
    var number = text
    var scale = 1.0
    if number.hasSuffix("ms") {
      number.removeLast(2)
      scale = 0.001
    } else if number.hasSuffix("s") {
      number.removeLast()
    }
    guard let value = Double(number), value > 0, value.isFinite else { return nil }
    return value * scale
  }

  public static func parse(_ text: String, file: String) throws(AgentConfig.Error) -> AgentConfig {
    var values: [String: (String, Int)] = [:]
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let lineNumber = index + 1
      var line = Substring(raw)
      if line.hasSuffix("\r") { line = line.dropLast() }
      if let hash = line.firstRange(of: " #") { line = line[..<hash.lowerBound] }
      let trimmed = line.trimmingSpace()
      if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed == "---" { continue }
      guard !line.hasPrefix(" "), !line.hasPrefix("\t"), let colon = trimmed.firstIndex(of: ":") else {
        throw Error("\(file):\(lineNumber):1: expected 'key: value' at the top level.")
      }
      let key = String(trimmed[..<colon])
      var value = trimmed[trimmed.index(after: colon)...].trimmingSpace()
      if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
        value = String(value.dropFirst().dropLast())
      }
      let known = [
        "broker", "instance_id", "token", "token_file", "broker_public_key", "timeout", "max_age", "syslog",
      ]
      guard known.contains(key) else {
        throw Error(
          "\(file):\(lineNumber):1: unknown key '\(key)'; expected one of: \(known.joined(separator: ", ")).")
      }
      guard values[key] == nil else { throw Error("\(file):\(lineNumber):1: '\(key)' is set twice.") }
      values[key] = (value, lineNumber)
    }
    func required(_ key: String) throws(AgentConfig.Error) -> (String, Int) {
      guard let value = values[key], !value.0.isEmpty else { throw Error("\(file): '\(key)' is required.") }
      return value
    }
    let (brokerText, brokerLine) = try required("broker")
    guard let broker = URL(string: brokerText), ["http", "https"].contains(broker.scheme ?? ""),
      broker.host != nil
    else {
      throw Error("\(file):\(brokerLine):1: 'broker' is '\(brokerText)'; expected an http(s) URL.")
    }
    let (instanceID, idLine) = try required("instance_id")
    guard instanceID.hasPrefix("i-"), (10...32).contains(instanceID.count),
      instanceID.dropFirst(2).allSatisfy({ $0.isHexDigit && !$0.isUppercase })
    else {
      throw Error(
        "\(file):\(idLine):1: 'instance_id' is '\(instanceID)'; expected i- followed by hex digits.")
    }
    var token: String
    var tokenInline = false
    if let (inline, _) = values["token"] {
      token = inline
      tokenInline = true
    } else {
      let (tokenFile, tokenLine) = try required("token_file")
      guard let data = FileManager.default.contents(atPath: tokenFile),
        let text = String(data: data, encoding: .utf8)
      else { throw Error("\(file):\(tokenLine):1: cannot read the token file \(tokenFile).") }
      token = text.trimmingSpace(newlines: true)
    }
    guard token.utf8.count >= 16, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
      throw Error("\(file): the agent token must be at least 16 printable characters without spaces.")
    }
    let (keyText, keyLine) = try required("broker_public_key")
    guard let raw = Data(base64Encoded: keyText),
      let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    else {
      throw Error("\(file):\(keyLine):1: 'broker_public_key' is not a base64 Ed25519 public key (32 bytes).")
    }
    var config = AgentConfig(broker: broker, instanceID: instanceID, token: token, brokerPublicKey: publicKey)
    config.tokenInline = tokenInline
    if let (text, line) = values["timeout"] {
      guard let seconds = seconds(text), seconds <= 5 else {
        throw Error("\(file):\(line):1: 'timeout' is '\(text)'; expected a duration up to 5s, like 3s.")
      }
      config.timeout = seconds
    }
    if let (text, line) = values["max_age"] {
      guard let seconds = seconds(text), seconds >= 1, seconds <= 600 else {
        throw Error("\(file):\(line):1: 'max_age' is '\(text)'; expected a duration from 1s to 600s.")
      }
      config.maxAge = Int64(seconds)
    }
    if let (text, line) = values["syslog"] {
      guard text == "true" || text == "false" else {
        throw Error("\(file):\(line):1: 'syslog' is '\(text)'; expected true or false.")
      }
      config.syslog = text == "true"
    }
    return config
  }

  /// The key-list URL for `user`.
  public func keysURL(user: String) -> URL? {
    var text = broker.absoluteString
    while text.hasSuffix("/") { text.removeLast() }
    return URL(string: "\(text)/agent/v1/keys?instance_id=\(instanceID)&user=\(user.percentEncodedForQuery)")
  }
}
