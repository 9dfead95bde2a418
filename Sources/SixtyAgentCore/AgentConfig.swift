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
/// broker: https://broker.example.com:8600   # the broker's base URL, or a list of up to 8:
///                                            #   [http://b1:8600, https://b2:8600], or one
///                                            #   `  - URL` line each below `broker:`
/// instance_id: i-0123456789abcdef0          # this host's id in the broker's registry
/// token_file: /etc/sixty/agent.token         # or token: "…" (at least 16 characters)
/// broker_public_key: 3q2+7w…=                # base64 Ed25519 key from `sixty broker public-key`
/// timeout: 3s                                # whole fetch, at most 5s
/// max_age: 60s                               # how old a signed list may be
/// syslog: true                               # also log to syslog (auth facility)
/// ```
///
/// With several brokers (replicas sharing one database, so any serves any key list) the agent
/// tries them in order within the one `timeout`, moving on after a connection error, a timeout,
/// an HTTP 5xx answer or a list whose signature or content does not verify (see `AgentMain`).
public struct AgentConfig: Sendable {
  /// The brokers, in the order they are tried (at least one, at most `maxBrokers`).
  public var brokers: [URL]
  public var instanceID: String
  public var token: String
  public var brokerPublicKey: Curve25519.Signing.PublicKey
  public var timeout: Double = 3
  public var maxAge: Int64 = 60
  public var syslog = true
  /// Whether the token was in the file itself (`token:`) rather than in `token_file`.
  public var tokenInline = false

  public static let defaultPath = "/etc/sixty/agent.yml"
  /// The most brokers `broker:` may list: each one that hangs takes its share of the timeout.
  public static let maxBrokers = 8

  /// The first broker.
  public var broker: URL { brokers[0] }

  public init(
    brokers: [URL], instanceID: String, token: String, brokerPublicKey: Curve25519.Signing.PublicKey
  ) {
    precondition(!brokers.isEmpty, "an agent configuration names at least one broker")
    self.brokers = brokers
    self.instanceID = instanceID
    self.token = token
    self.brokerPublicKey = brokerPublicKey
  }

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
    // `broker:`'s URLs with their line and column, from one value, a flow list or a block list.
    var brokerItems: [(text: String, line: Int, column: Int)] = []
    // The key whose value is empty on its line, so `  - item` lines may follow (only `broker`).
    var openList: (key: String, line: Int)?
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let lineNumber = index + 1
      var line = Substring(raw)
      if line.hasSuffix("\r") { line = line.dropLast() }
      if let hash = line.firstRange(of: " #") { line = line[..<hash.lowerBound] }
      let trimmed = line.trimmingSpace()
      if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed == "---" { continue }
      if line.hasPrefix(" ") || line.hasPrefix("\t") {
        // A block list item: `  - URL`.
        let scalars = Array(line.unicodeScalars)
        let dash = scalars.firstIndex { $0 != " " && $0 != "\t" } ?? 0
        guard scalars[dash] == "-", dash + 1 == scalars.count || scalars[dash + 1] == " " else {
          throw Error("\(file):\(lineNumber):1: expected 'key: value' at the top level.")
        }
        guard let list = openList else {
          throw Error(
            "\(file):\(lineNumber):\(dash + 1): a list item, but no key above it waits for a list; expected 'key: value' at the top level."
          )
        }
        guard list.key == "broker" else {
          throw Error("\(file):\(lineNumber):\(dash + 1): '\(list.key)' takes one value, not a list.")
        }
        var start = dash + 1
        var end = scalars.count
        while start < end, scalars[start] == " " || scalars[start] == "\t" { start += 1 }
        while end > start, scalars[end - 1] == " " || scalars[end - 1] == "\t" { end -= 1 }
        brokerItems.append(
          (unquoted(String(String.UnicodeScalarView(scalars[start..<end]))), lineNumber, start + 1))
        continue
      }
      guard let colon = trimmed.firstIndex(of: ":") else {
        throw Error("\(file):\(lineNumber):1: expected 'key: value' at the top level.")
      }
      let key = String(trimmed[..<colon])
      let value = unquoted(trimmed[trimmed.index(after: colon)...].trimmingSpace())
      let known = [
        "broker", "instance_id", "token", "token_file", "broker_public_key", "timeout", "max_age", "syslog",
      ]
      guard known.contains(key) else {
        throw Error(
          "\(file):\(lineNumber):1: unknown key '\(key)'; expected one of: \(known.concatenated(separator: ", "))."
        )
      }
      guard values[key] == nil else { throw Error("\(file):\(lineNumber):1: '\(key)' is set twice.") }
      values[key] = (value, lineNumber)
      openList = value.isEmpty ? (key, lineNumber) : nil
      if key == "broker" && !value.isEmpty {
        // The value's column: after the key, the colon and the spaces.
        let scalars = Array(line.unicodeScalars)
        var start = (scalars.firstIndex(of: ":") ?? 0) + 1
        while start < scalars.count, scalars[start] == " " || scalars[start] == "\t" { start += 1 }
        brokerItems = try flowItems(value, line: lineNumber, column: start + 1, file: file)
      }
    }
    guard let (_, brokerLine) = values["broker"] else { throw Error("\(file): 'broker' is required.") }
    guard !brokerItems.isEmpty else {
      throw Error("\(file):\(brokerLine):1: 'broker' is empty; expected an http(s) URL or a list of them.")
    }
    let brokers = try brokerURLs(brokerItems, file: file)
    func required(_ key: String) throws(AgentConfig.Error) -> (String, Int) {
      guard let value = values[key], !value.0.isEmpty else { throw Error("\(file): '\(key)' is required.") }
      return value
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
    var config = AgentConfig(
      brokers: brokers, instanceID: instanceID, token: token, brokerPublicKey: publicKey)
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

  /// The key-list URL for `user` at the first broker.
  public func keysURL(user: String) -> URL? { keysURL(user: user, broker: broker) }

  /// The key-list URL for `user` at `broker`.
  public func keysURL(user: String, broker: URL) -> URL? {
    var text = broker.absoluteString
    while text.hasSuffix("/") { text.removeLast() }
    return URL(string: "\(text)/agent/v1/keys?instance_id=\(instanceID)&user=\(user.percentEncodedForQuery)")
  }

  /// `text` without one pair of matching quotes around it.
  static func unquoted<S: StringProtocol>(_ text: S) -> String {
    let scalars = text.unicodeScalars
    if scalars.count >= 2, let first = scalars.first, first == "\"" || first == "'", scalars.last == first {
      return String(String.UnicodeScalarView(scalars.dropFirst().dropLast()))
    }
    return String(text)
  }

  /// The items of a `broker:` value that starts at `column`: the value itself, or the items of a
  /// flow list `[a, b]`, each with its column (in Unicode scalars, from 1).
  static func flowItems(_ value: String, line: Int, column: Int, file: String) throws(AgentConfig.Error) -> [(
    text: String, line: Int, column: Int
  )] {
    let scalars = Array(value.unicodeScalars)
    guard scalars.first == "[" else { return [(value, line, column)] }
    guard scalars.count >= 2, scalars.last == "]" else {
      throw Error(
        "\(file):\(line):\(column + scalars.count): the list of 'broker' has no closing ']'; expected [URL, URL, …] on one line."
      )
    }
    var items: [(text: String, line: Int, column: Int)] = []
    var start = 1
    for end in 1..<scalars.count where end == scalars.count - 1 || scalars[end] == "," {
      var first = start
      var last = end
      while first < last, scalars[first] == " " || scalars[first] == "\t" { first += 1 }
      while last > first, scalars[last - 1] == " " || scalars[last - 1] == "\t" { last -= 1 }
      guard first < last || (items.isEmpty && end == scalars.count - 1) else {
        throw Error(
          "\(file):\(line):\(column + first): the list of 'broker' has an empty item (item \(items.count + 1)); expected URLs separated by single commas."
        )
      }
      if first < last {
        items.append(
          (unquoted(String(String.UnicodeScalarView(scalars[first..<last]))), line, column + first))
      }
      start = end + 1
    }
    return items
  }

  /// Each item checked: an http(s) URL with a host, in printable ASCII, listed once; at most
  /// `maxBrokers`.
  static func brokerURLs(_ items: [(text: String, line: Int, column: Int)], file: String) throws(AgentConfig
    .Error)
    -> [URL]
  {
    if items.count > maxBrokers {
      let extra = items[maxBrokers]
      throw Error(
        "\(file):\(extra.line):\(extra.column): 'broker' lists \(items.count) URLs; at most \(maxBrokers) are allowed (each one that hangs takes its share of the timeout)."
      )
    }
    var urls: [URL] = []
    for (index, item) in items.enumerated() {
      let place = "\(file):\(item.line):\(item.column)"
      let what =
        items.count == 1
        ? "'broker' is \(quotedForMessage(item.text))"
        : "'broker' lists \(quotedForMessage(item.text)) (item \(index + 1) of \(items.count))"
      // Bytes, not Characters: printable ASCII only (a name in its xn-- form), so no look-alike
      // letter, space or control character can hide in a URL.
      guard !item.text.isEmpty, item.text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
        throw Error(
          "\(place): \(what); expected an http(s) URL in printable ASCII without spaces (an international host name in its xn-- form)."
        )
      }
      guard let url = URL(string: item.text), url.scheme == "http" || url.scheme == "https",
        let host = url.host, !host.isEmpty
      else {
        throw Error(
          "\(place): \(what); expected an http(s) URL with a host, like http://broker.example.com:8600.")
      }
      guard !urls.contains(where: { $0.absoluteString == url.absoluteString }) else {
        throw Error("\(place): \(what), which is listed twice; expected each broker once.")
      }
      urls.append(url)
    }
    return urls
  }
}
