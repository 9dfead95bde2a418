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
  static func parse(_ raw: [UInt8], limit: Int) throws(Failure) -> Response {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let end = raw.indices.first(where: { raw[$0...].starts(with: separator) }) else {
      throw Failure("the answer ended before its headers did")
    }
    let head = String(decoding: raw[..<end], as: UTF8.self).split(
      separator: "\r\n", omittingEmptySubsequences: false)
    let statusWords = head.first?.split(separator: " ") ?? []
    guard statusWords.count >= 2, statusWords[0].hasPrefix("HTTP/1."), let status = Int(statusWords[1]) else {
      throw Failure("the answer is not HTTP (\(head.first?.prefix(40) ?? ""))")
    }
    var length: Int?
    var chunked = false
    for line in head.dropFirst() {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let name = line[..<colon].lowercased()
      let value = line[line.index(after: colon)...].trimmingSpace()
      if name == "content-length" {
        guard let n = Int(value), n >= 0 else {
          throw Failure("the Content-Length '\(value)' is not a number")
        }
        length = n
      } else if name == "transfer-encoding" {
        chunked = value.lowercased().contains("chunked")
      }
    }
    let rest = Array(raw[(end + 4)...])
    var body: [UInt8]
    if chunked {
      body = try dechunk(rest)
    } else if let length {
      guard rest.count >= length else {
        throw Failure("the answer ended after \(rest.count) of \(length) bytes")
      }
      body = Array(rest.prefix(length))
    } else {
      body = rest
    }
    if body.count > limit { throw Failure("the answer is larger than \(limit) bytes") }
    return Response(status: status, body: body)
  }

  static func dechunk(_ data: [UInt8]) throws(Failure) -> [UInt8] {
    var body: [UInt8] = []
    var index = 0
    while true {
      guard
        let lineEnd = (index..<max(index, data.count - 1)).first(where: {
          data[$0] == 13 && data[$0 + 1] == 10
        })
      else {
        throw Failure("a chunk size line is incomplete")
      }
      let sizeText = String(decoding: data[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
      guard let size = Int(sizeText.trimmingSpace(), radix: 16), size >= 0 else {
        throw Failure("a chunk size '\(sizeText.prefix(20))' is not hexadecimal")
      }
      index = lineEnd + 2
      if size == 0 { return body }
      guard index + size + 2 <= data.count else { throw Failure("the answer ended inside a chunk") }
      body += data[index..<(index + size)]
      index += size + 2
    }
  }
}
