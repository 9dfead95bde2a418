#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif

#if canImport(Glibc)
  import Glibc
#endif

/// A minimal HTTP/1.1 GET over a plain TCP socket, for `sixty-agent`.
///
/// sshd runs the agent on every login, twice (for the key query and for the signed request), so
/// its start-up cost is paid per login. Foundation's URLSession pulls in libcurl and some thirty
/// shared libraries; this client needs none of them. It speaks only what the agent needs: one
/// GET, `Connection: close`, a body by Content-Length, chunks or end of stream, under one
/// deadline for everything. (The broker's answer is signed, so the agent trusts the signature,
/// not the transport.)
public enum PlainHTTP {
  public struct Failure: Error, CustomStringConvertible, Equatable {
    public let description: String
    /// The deadline passed (the agent reports this as the broker not answering in time).
    public let isTimeout: Bool
    public init(_ description: String, isTimeout: Bool = false) {
      self.description = description
      self.isTimeout = isTimeout
    }
  }

  public struct Response: Equatable {
    public var status: Int
    public var body: [UInt8]
  }

  /// GETs `url` (http only) with extra `headers`, all within `timeout` seconds; at most
  /// `limit` bytes of body are accepted.
  public static func get(
    _ url: URL, headers: [(String, String)], timeout: Double, limit: Int = 1 << 20
  ) throws(Failure) -> Response {
    guard url.scheme == "http", let host = url.host, !host.isEmpty,
      let components = URLComponents(url: url, resolvingAgainstBaseURL: false)
    else {
      throw Failure("\(url.absoluteString) is not an http:// URL")
    }
    let port = url.port ?? 80
    let deadline = now() + timeout
    var target = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
    if let query = components.percentEncodedQuery { target += "?" + query }
    // An IPv6 literal keeps its brackets in the Host header, as in the URL (RFC 9112 §3.2).
    let authority = host.contains(":") ? "[\(host)]" : host
    var request = "GET \(target) HTTP/1.1\r\nHost: \(authority):\(port)\r\nUser-Agent: sixty-agent\r\n"
    request += "Accept: application/json\r\nConnection: close\r\n"
    for (name, value) in headers {
      guard !name.contains(where: { $0 == "\r" || $0 == "\n" || $0 == ":" }),
        !value.contains(where: { $0 == "\r" || $0 == "\n" })
      else { throw Failure("a request header contains a line break") }
      request += "\(name): \(value)\r\n"
    }
    request += "\r\n"
    let fd = try connect(host: host, port: port, deadline: deadline)
    defer { close(fd) }
    try send(fd, Array(request.utf8), deadline: deadline)
    let raw = try receive(fd, limit: limit + 65536, deadline: deadline)
    return try parse(raw, limit: limit)
  }

  static func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
  }

  static func errorText(_ code: Int32) -> String {
    switch code {
    case ECONNREFUSED: "the connection was refused"
    case ETIMEDOUT: "the connection timed out"
    case EHOSTUNREACH, ENETUNREACH: "the host is unreachable"
    default: String(cString: strerror(code))
    }
  }

  /// Waits until `fd` is ready for `events` or the deadline passes.
  static func wait(_ fd: Int32, _ events: Int32, deadline: Double) throws(Failure) {
    while true {
      let left = deadline - now()
      guard left > 0 else { throw Failure("no answer within the deadline", isTimeout: true) }
      var entry = pollfd(fd: fd, events: Int16(events), revents: 0)
      let ready = poll(&entry, 1, Int32(min(left * 1000, 60_000).rounded(.up)))
      if ready > 0 { return }
      if ready < 0 && errno != EINTR { throw Failure("poll: \(errorText(errno))") }
    }
  }

  static func connect(host: String, port: Int, deadline: Double) throws(Failure) -> Int32 {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    let resolved = getaddrinfo(host, String(port), &hints, &list)
    guard resolved == 0, let first = list else {
      throw Failure("cannot resolve \(host): \(String(cString: gai_strerror(resolved)))")
    }
    defer { freeaddrinfo(first) }
    var last = "no address for \(host)"
    var cursor: UnsafeMutablePointer<addrinfo>? = first
    while let info = cursor {
      cursor = info.pointee.ai_next
      let fd = socket(
        info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue),
        info.pointee.ai_protocol)
      guard fd >= 0 else {
        last = errorText(errno)
        continue
      }
      _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
      if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
        guard errno == EINPROGRESS else {
          last = errorText(errno)
          close(fd)
          continue
        }
        do {
          try wait(fd, Int32(POLLOUT), deadline: deadline)
        } catch {
          close(fd)
          throw Failure("connecting to \(host):\(port) took longer than the deadline", isTimeout: true)
        }
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
        if code != 0 {
          last = errorText(code)
          close(fd)
          continue
        }
      }
      return fd
    }
    throw Failure(last)
  }

  static func send(_ fd: Int32, _ bytes: [UInt8], deadline: Double) throws(Failure) {
    var sent = 0
    while sent < bytes.count {
      let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if n > 0 {
        sent += n
      } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
        try wait(fd, Int32(POLLOUT), deadline: deadline)
      } else {
        throw Failure("sending the request failed: \(errorText(errno))")
      }
    }
  }

  static func receive(_ fd: Int32, limit: Int, deadline: Double) throws(Failure) -> [UInt8] {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
      let n = read(fd, &chunk, chunk.count)
      if n > 0 {
        data += chunk[0..<n]
        if data.count > limit { throw Failure("the answer is larger than \(limit) bytes") }
      } else if n == 0 {
        return data
      } else if errno == EAGAIN || errno == EINTR {
        try wait(fd, Int32(POLLIN), deadline: deadline)
      } else {
        throw Failure("reading the answer failed: \(errorText(errno))")
      }
    }
  }

  /// Parses a complete HTTP/1.1 response (the server closed the connection after it).
  ///
  /// Everything is read as bytes with checked arithmetic: a hostile or broken server can make
  /// the agent fail (closed, with a message), never trap or allocate more than `limit`.
  static func parse(_ raw: [UInt8], limit: Int) throws(Failure) -> Response {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let end = raw.indices.first(where: { raw[$0...].starts(with: separator) }) else {
      throw Failure("the answer ended before its headers did")
    }
    let lines = split(raw[..<end])
    let statusLine = lines.first ?? raw[0..<0]
    let statusWords = statusLine.split(separator: 0x20, omittingEmptySubsequences: true)
    guard statusWords.count >= 2, statusWords[0].starts(with: Array("HTTP/1.".utf8)),
      statusWords[1].count == 3, let status = decimal(statusWords[1], limit: 999)
    else {
      throw Failure(
        "the answer is not HTTP (it begins \(printable(statusLine.prefix(40)))); expected a status line like HTTP/1.1 200 OK"
      )
    }
    var length: Int?
    var chunked = false
    for line in lines.dropFirst() {
      guard let colon = line.firstIndex(of: 0x3A) else {
        throw Failure("the answer has a header line without a colon (\(printable(line.prefix(40))))")
      }
      let name = line[..<colon]
      let value = trimmed(line[(colon + 1)...])
      if equalsIgnoringCase(name, "content-length") {
        guard let n = decimal(value, limit: Int.max) else {
          throw Failure(
            "the Content-Length '\(printable(value.prefix(40)))' is not a number; expected decimal digits only"
          )
        }
        if let length, length != n {
          throw Failure("the answer has two different Content-Length headers (\(length) and \(n))")
        }
        length = n
      } else if equalsIgnoringCase(name, "transfer-encoding") {
        // The last coding must be chunked; the agent asks for no other (RFC 9112 section 6.1).
        let codings = value.split(separator: 0x2C).map { trimmed($0) }
        guard let last = codings.last, equalsIgnoringCase(last, "chunked"), codings.count == 1 else {
          throw Failure(
            "the Transfer-Encoding '\(printable(value.prefix(40)))' is not supported; expected chunked")
        }
        chunked = true
      }
    }
    let rest = raw[(end + 4)...]
    let body: [UInt8]
    if chunked {
      body = try dechunk(Array(rest), limit: limit)
    } else if let length {
      guard length <= limit else {
        throw Failure("the answer is larger than \(limit) bytes (its Content-Length is \(length))")
      }
      guard rest.count >= length else {
        throw Failure("the answer ended after \(rest.count) of \(length) bytes")
      }
      body = Array(rest.prefix(length))
    } else {
      body = Array(rest)
    }
    if body.count > limit { throw Failure("the answer is larger than \(limit) bytes") }
    return Response(status: status, body: body)
  }

  /// Decodes a chunked body (RFC 9112 section 7.1) of at most `limit` bytes.
  static func dechunk(_ data: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
    var body: [UInt8] = []
    var index = 0
    while true {
      guard let lineEnd = lineEnd(data, from: index) else {
        throw Failure("a chunk size line is incomplete")
      }
      let line = data[index..<lineEnd]
      // The size, then optional whitespace and `;extensions`.
      let digitsEnd = line.firstIndex { hexValue($0) == nil } ?? line.endIndex
      let digits = line[..<digitsEnd]
      let after = trimmed(line[digitsEnd...])
      guard !digits.isEmpty, after.isEmpty || after.first == 0x3B else {
        throw Failure(
          "a chunk size '\(printable(line.prefix(20)))' is not hexadecimal; expected hex digits and optional ;extensions"
        )
      }
      // At most `limit - body.count`: 16 hex digits fit in Int64, but a size is refused as soon
      // as it passes what the body may still hold, before any arithmetic can overflow.
      let room = limit - body.count
      var size = 0
      for digit in digits {
        let (shifted, overflow) = size.multipliedReportingOverflow(by: 16)
        let (next, overflowAdd) = shifted.addingReportingOverflow(Int(hexValue(digit) ?? 0))
        guard !overflow, !overflowAdd, next <= room else {
          throw Failure(
            "a chunk size of \(printable(digits.prefix(20))) (hex) is larger than the \(room) bytes the answer may still hold (at most \(limit) in all)"
          )
        }
        size = next
      }
      index = lineEnd + 2
      if size == 0 { return body }
      // index <= data.count, and the chunk with its CRLF fits in what is left: no overflow below.
      guard data.count - index >= 2, data.count - index - 2 >= size else {
        throw Failure("the answer ended inside a chunk")
      }
      guard data[index + size] == 13, data[index + size + 1] == 10 else {
        throw Failure("a chunk of \(size) bytes is not followed by a line break")
      }
      body += data[index..<(index + size)]
      index += size + 2
    }
  }

  /// The index of the CR of the first CRLF at or after `start`.
  static func lineEnd(_ data: [UInt8], from start: Int) -> Int? {
    var index = start
    while index + 1 < data.count {
      if data[index] == 13 && data[index + 1] == 10 { return index }
      index += 1
    }
    return nil
  }

  /// The lines of `bytes`, split at CRLF.
  static func split(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
    var lines: [ArraySlice<UInt8>] = []
    var start = bytes.startIndex
    var index = bytes.startIndex
    while index < bytes.endIndex {
      if bytes[index] == 13, index + 1 < bytes.endIndex, bytes[index + 1] == 10 {
        lines.append(bytes[start..<index])
        index += 2
        start = index
      } else {
        index += 1
      }
    }
    lines.append(bytes[start..<bytes.endIndex])
    return lines
  }

  static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: byte - 0x30
    case 0x41...0x46: byte - 0x41 + 10
    case 0x61...0x66: byte - 0x61 + 10
    default: nil
    }
  }

  /// Decimal digits only (no sign, no space), at most `limit`.
  static func decimal(_ bytes: ArraySlice<UInt8>, limit: Int) -> Int? {
    guard !bytes.isEmpty else { return nil }
    var value = 0
    for byte in bytes {
      guard byte >= 0x30 && byte <= 0x39 else { return nil }
      let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
      let (next, overflowAdd) = shifted.addingReportingOverflow(Int(byte - 0x30))
      guard !overflow, !overflowAdd, next <= limit else { return nil }
      value = next
    }
    return value
  }

  /// Without leading and trailing spaces and tabs.
  static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    var slice = bytes
    while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
    while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
    return slice
  }

  /// Whether `bytes` spell `text` (lowercase ASCII), ignoring ASCII case.
  static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ text: String) -> Bool {
    let expected = Array(text.utf8)
    guard bytes.count == expected.count else { return false }
    return zip(bytes, expected).allSatisfy { byte, lower in
      (byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte) == lower
    }
  }

  /// `bytes` for a message: printable ASCII as is, anything else as \xNN.
  static func printable(_ bytes: ArraySlice<UInt8>) -> String {
    var text = ""
    for byte in bytes {
      if byte >= 0x20 && byte < 0x7F && byte != 0x5C {
        text.unicodeScalars.append(Unicode.Scalar(byte))
      } else {
        text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
      }
    }
    return text
  }
}
