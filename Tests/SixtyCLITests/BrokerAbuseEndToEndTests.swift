import Foundation
import InstanceConnect
import Testing

/// A raw TCP client for abusing the broker: it sends what it is told, byte by byte if asked,
/// and notices when the server closes the connection.
final class RawClient: @unchecked Sendable {
  let fd: Int32
  let opened = Date()

  /// Connects to 127.0.0.1:`port` from the loopback address `source` (any 127.x.y.z works on
  /// Linux), so tests can play several clients.
  init(port: Int, source: String = "127.0.0.1") throws {
    fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var local = sockaddr_in()
    local.sin_family = sa_family_t(AF_INET)
    local.sin_addr.s_addr = inet_addr(source)
    let bound = withUnsafePointer(to: &local) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0 else {
      close(fd)
      throw Spawn.Failure(description: "cannot bind to \(source): \(String(cString: strerror(errno)))")
    }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    let result = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard result == 0 else {
      close(fd)
      throw Spawn.Failure(
        description: "cannot connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
    }
  }

  deinit { close(fd) }

  /// Ends the connection both ways (the server half-closes after a `Connection: close` answer
  /// and waits for the client's end).
  func shutdown() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

  /// Sends `bytes`; false once the peer has gone.
  @discardableResult func send(_ bytes: [UInt8]) -> Bool {
    var sent = 0
    while sent < bytes.count {
      let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
      if n <= 0 { return false }
      sent += n
    }
    return true
  }

  /// Everything the server sent within `timeout`, and whether it closed the connection.
  func read(timeout: TimeInterval) -> (text: String, closed: Bool) {
    var data: [UInt8] = []
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      let wait = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
      guard poll(&poller, 1, wait) > 0 else { continue }
      var buffer = [UInt8](repeating: 0, count: 65536)
      let n = recv(fd, &buffer, buffer.count, 0)
      if n <= 0 { return (String(decoding: data, as: UTF8.self), true) }
      data += buffer[0..<n]
    }
    return (String(decoding: data, as: UTF8.self), false)
  }

  /// One answer whose body is a JSON object (the broker's error shape): reads until the head has
  /// ended and the last byte is "}". Nil when nothing complete arrives within `timeout`.
  func readJSONAnswer(timeout: TimeInterval) -> String? {
    var data: [UInt8] = []
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
      guard poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
      var buffer = [UInt8](repeating: 0, count: 65536)
      let n = recv(fd, &buffer, buffer.count, 0)
      if n <= 0 { return nil }
      data += buffer[0..<n]
      let text = String(decoding: data, as: UTF8.self)
      if text.contains("\r\n\r\n"), data.last == UInt8(ascii: "}") { return text }
    }
    return nil
  }

  /// Sends `bytes` one at a time, `interval` apart, until the server closes the connection or
  /// `limit` passes. Returns the seconds from opening to the close, or nil if it never closed.
  func dribble(_ bytes: [UInt8], interval: TimeInterval, limit: TimeInterval) -> TimeInterval? {
    var index = 0
    while Date().timeIntervalSince(opened) < limit {
      if read(timeout: interval).closed { return Date().timeIntervalSince(opened) }
      if !send([bytes[index % bytes.count]]) { return Date().timeIntervalSince(opened) }
      index += 1
    }
    return nil
  }
}

/// The broker against slow, oversized and malformed clients, over real TCP: connections are
/// bounded, slow clients are cut off, and honest clients are still served.
@Suite(.serialized) struct BrokerAbuseEndToEndTests {
  func openDescriptors(_ pid: pid_t) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func slowClientsAreCutOffConnectionsAreBoundedAndHonestPushesGetThrough() throws {
    try withLocalFleet(
      LocalFleet(
        count: 1, startSSHD: false,
        extraBrokerConfig:
          "max_connections: 8\nmax_connections_per_source: 4\nidle_timeout: 2s\nheader_timeout: 2s\nbody_timeout: 2s"
      )
    ) { fleet in
      let key = fleet.directory + "/k"
      #expect(
        try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).status == 0)
      func push() throws -> (status: Int32, seconds: TimeInterval, stderr: String) {
        let start = Date()
        let result = try SixtyBinary.run(
          [
            "push", "--instance-id", fleet.hosts[0].instanceID, "--os-user", "ops", "--public-key",
            key + ".pub",
            "--endpoint", fleet.endpoint,
          ], environment: fleet.environment)
        return (result.status, Date().timeIntervalSince(start), result.stderr)
      }
      #expect(try push().status == 0)
      let baseline = openDescriptors(fleet.broker.pid)

      // Slowloris: 6 clients dribble a request head, 6 a request body, a byte every 300 ms; 40
      // more connect and send nothing. That is 52 connections against a limit of 8, from 13
      // addresses that each stay within the limit of 4 a source.
      let sources = (2...14).map { "127.0.0.\($0)" }
      let head =
        Array("POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 400)
      let bodyHead = Array(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 4000\r\n\r\n"
          .utf8)
      let results = Results()
      let group = DispatchGroup()
      var silent: [RawClient] = []
      for index in 0..<12 {
        let client = try RawClient(port: fleet.brokerPort, source: sources[index % sources.count])
        DispatchQueue.global().async(group: group) {
          if index >= 6 { _ = client.send(bodyHead) }
          let closedAfter = client.dribble(
            index < 6 ? head : Array(repeating: UInt8(ascii: "{"), count: 1), interval: 0.3, limit: 30)
          results.add(index < 6 ? "head" : "body", closedAfter)
        }
      }
      for index in 12..<52 {
        silent.append(try RawClient(port: fleet.brokerPort, source: sources[index % sources.count]))
      }
      Thread.sleep(forTimeInterval: 1)
      // The broker holds at most max_connections of them; the rest wait in the listen queue.
      let during = openDescriptors(fleet.broker.pid)
      // (NIO accepts in small batches, so a few more than the limit may be open at a moment.)
      #expect(during <= baseline + 8 + 6, "\(during) descriptors open, \(baseline) before")
      // An honest push still gets through once the slow clients are cut off.
      let honest = try push()
      #expect(honest.status == 0, "\(honest.stderr)")
      #expect(honest.seconds < 25, "the honest push took \(honest.seconds)s")
      group.wait()
      let closed = results.all
      #expect(closed.count == 12)
      for (kind, after) in closed {
        let after = try #require(after, "a slow \(kind) client was never cut off")
        // idle_timeout/body_timeout 2 s, plus the time it waited for a connection slot.
        #expect(after < 12, "a slow \(kind) client was cut off only after \(after)s")
      }
      // The silent connections were accepted in turn and closed by the header timeout.
      for client in silent {
        let answer = client.read(timeout: 30)
        #expect(answer.closed, "a silent connection was never closed")
      }
      #expect(fleet.broker.log.contains("request body did not arrive within 2.0s"), "\(fleet.broker.log)")
      #expect(openDescriptors(fleet.broker.pid) <= baseline + 1)
    }
  }

  /// An agent key-list request on `client`, which the server answers and then closes.
  func fetchKeys(_ client: RawClient, _ fleet: LocalFleet, keepAlive: Bool = false) -> (
    text: String, closed: Bool
  ) {
    let host = fleet.hosts[0]
    client.send(
      Array(
        "GET /agent/v1/keys?instance_id=\(host.instanceID)&user=ops HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(host.token)\r\n\(keepAlive ? "" : "Connection: close\r\n")\r\n"
          .utf8))
    return client.read(timeout: keepAlive ? 2 : 10)
  }

  /// One address cannot hold more than max_connections_per_source connections: the next ones
  /// are closed at once, while another address is served, and so is the first once it is back
  /// under its limit.
  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func connectionsOverThePerSourceLimitAreClosedWhileOtherSourcesAreServed() throws {
    try withLocalFleet(
      LocalFleet(
        count: 1, startSSHD: false, extraBrokerConfig: "max_connections_per_source: 4\nheader_timeout: 60s")
    ) { fleet in
      let held = try (0..<4).map { _ in try RawClient(port: fleet.brokerPort, source: "127.0.0.2") }
      // The connections above are accepted in order; one answered request on the last of them
      // shows the broker has counted all four.
      #expect(fetchKeys(held[3], fleet, keepAlive: true).text.hasPrefix("HTTP/1.1 200"))
      for index in 0..<12 {
        let extra = try RawClient(port: fleet.brokerPort, source: "127.0.0.2")
        let answer = extra.read(timeout: 10)
        #expect(answer.closed && answer.text.isEmpty, "connection \(index + 5) from 127.0.0.2: \(answer)")
      }
      // 127.0.0.1 is served meanwhile: a push (the sixty CLI) and a key-list fetch.
      let key = fleet.directory + "/k"
      #expect(
        try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).status == 0)
      let pushed = try SixtyBinary.run(
        [
          "push", "--instance-id", fleet.hosts[0].instanceID, "--os-user", "ops", "--public-key",
          key + ".pub",
          "--endpoint", fleet.endpoint,
        ], environment: fleet.environment)
      #expect(pushed.status == 0, "\(pushed.stderr)")
      let honest = fetchKeys(try RawClient(port: fleet.brokerPort), fleet)
      #expect(honest.text.hasPrefix("HTTP/1.1 200"), "\(honest.text)")
      // The held connections themselves are served.
      #expect(fetchKeys(held[0], fleet).text.hasPrefix("HTTP/1.1 200"))
      // Once held[0] is closed, 127.0.0.2 has a free slot again (when the broker has seen the close).
      held[0].shutdown()
      var servedAgain = false
      for _ in 0..<50 where !servedAgain {
        servedAgain = fetchKeys(try RawClient(port: fleet.brokerPort, source: "127.0.0.2"), fleet).text
          .hasPrefix(
            "HTTP/1.1 200")
      }
      #expect(servedAgain)
      #expect(
        fleet.broker.log.contains("refusing connections from 127.0.0.2: it already has 4 open"),
        "\(fleet.broker.log)")
    }
  }

  /// A request head must arrive in full within header_timeout of the accept (or of the first
  /// byte of a later request on a kept-alive connection); an idle kept-alive connection waits
  /// for the idle timeout instead.
  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func slowRequestHeadsAreCutAtTheHeaderTimeoutButIdleKeepAliveIsNot() throws {
    try withLocalFleet(
      LocalFleet(count: 1, startSSHD: false, extraBrokerConfig: "header_timeout: 1s\nidle_timeout: 30s")
    ) { fleet in
      let head =
        Array("GET /agent/v1/keys HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
        + Array(repeating: UInt8(ascii: "a"), count: 400)
      let dribbler = try RawClient(port: fleet.brokerPort)
      let cutAfter = dribbler.dribble(head, interval: 0.2, limit: 15)
      #expect(
        cutAfter != nil && cutAfter! < 6, "a dribbled head was cut after \(String(describing: cutAfter))s")
      let silent = try RawClient(port: fleet.brokerPort)
      #expect(silent.read(timeout: 15).closed)
      #expect(Date().timeIntervalSince(silent.opened) < 6)
      // A kept-alive connection, idle for longer than header_timeout between two requests.
      let kept = try RawClient(port: fleet.brokerPort)
      let first = fetchKeys(kept, fleet, keepAlive: true)
      #expect(first.text.hasPrefix("HTTP/1.1 200") && !first.closed, "\(first)")
      Thread.sleep(forTimeInterval: 1.5)
      let second = fetchKeys(kept, fleet)
      #expect(second.text.hasPrefix("HTTP/1.1 200"), "\(second)")
      // ... but once it starts a request, the head must come in time.
      let slowSecond = try RawClient(port: fleet.brokerPort)
      #expect(fetchKeys(slowSecond, fleet, keepAlive: true).text.hasPrefix("HTTP/1.1 200"))
      let start = Date()
      var index = 0
      var cut = false
      while Date().timeIntervalSince(start) < 15 && !cut {
        if !slowSecond.send([head[index % head.count]]) || slowSecond.read(timeout: 0.2).closed { cut = true }
        index += 1
      }
      #expect(
        cut && Date().timeIntervalSince(start) < 6, "cut: \(cut) after \(Date().timeIntervalSince(start))s")
      #expect(fleet.broker.log.contains("request head did not arrive within 1.0s"), "\(fleet.broker.log)")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func oversizedAndMalformedRequestsAreAnsweredAndClosed() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      // A body announced at 10 MB: 413 at once, without reading it.
      let big = try RawClient(port: fleet.brokerPort)
      big.send(
        Array(
          "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 10000000\r\n\r\n"
            .utf8) + Array(repeating: UInt8(ascii: "x"), count: 32 * 1024))
      let bigAnswer = big.read(timeout: 5)
      #expect(bigAnswer.text.hasPrefix("HTTP/1.1 413"), "\(bigAnswer.text)")
      #expect(bigAnswer.closed)
      // A chunked body that grows past the limit.
      let chunked = try RawClient(port: fleet.brokerPort)
      var chunks = Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
      for _ in 0..<40 {
        chunks += Array("400\r\n".utf8) + Array(repeating: UInt8(ascii: "y"), count: 1024) + [13, 10]
      }
      chunked.send(chunks)
      let chunkedAnswer = chunked.read(timeout: 5)
      #expect(chunkedAnswer.text.hasPrefix("HTTP/1.1 413"), "\(chunkedAnswer.text)")
      // Not HTTP at all.
      let garbage = try RawClient(port: fleet.brokerPort)
      garbage.send(Array("\u{16}\u{03}\u{01}\u{02}\u{00}GARBAGE\r\n\r\n".utf8))
      let garbageAnswer = garbage.read(timeout: 5)
      #expect(garbageAnswer.text.hasPrefix("HTTP/1.1 400"), "\(garbageAnswer.text)")
      #expect(garbageAnswer.closed)
      // A 200 KB header.
      let header = try RawClient(port: fleet.brokerPort)
      header.send(
        Array("POST / HTTP/1.1\r\nHost: x\r\nX-Big: ".utf8)
          + Array(repeating: UInt8(ascii: "z"), count: 200_000)
          + Array("\r\n\r\n".utf8))
      let headerAnswer = header.read(timeout: 5)
      #expect(headerAnswer.text.hasPrefix("HTTP/1.1 4"), "\(headerAnswer.text)")
      #expect(headerAnswer.closed)
      // Malformed signatures over the wire: the service's error, never a crash or a 5xx.
      let body =
        "{\"InstanceId\":\"\(fleet.hosts[0].instanceID)\",\"InstanceOSUser\":\"ops\",\"SSHPublicKey\":\"x\"}"
      for authorization in [
        "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=,SignedHeaders=,Signature=",
        "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-east-1/ec2-instance-connect/aws4_request, SignedHeaders=host, Signature=zz",
        "Basic dXNlcjpwYXNz", String(repeating: "A", count: 8000),
      ] {
        let client = try RawClient(port: fleet.brokerPort)
        client.send(
          Array(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: AWSEC2InstanceConnectService.SendSSHPublicKey\r\nX-Amz-Date: 20261125T000000Z\r\nAuthorization: \(authorization)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
              .utf8))
        let answer = client.read(timeout: 5)
        #expect(answer.text.hasPrefix("HTTP/1.1 4"), "\(authorization.prefix(40)): \(answer.text)")
        #expect(answer.text.contains("Exception"), "\(answer.text)")
      }
      // Control characters in a header are refused by the HTTP parser itself.
      let control = try RawClient(port: fleet.brokerPort)
      control.send(
        Array(
          "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4 \u{1}\u{2}\r\nContent-Length: 0\r\n\r\n".utf8))
      let controlAnswer = control.read(timeout: 5)
      #expect(controlAnswer.text.hasPrefix("HTTP/1.1 400"), "\(controlAnswer.text)")
      #expect(controlAnswer.closed)
      // And the broker still serves.
      #expect(fleet.broker.isRunning)
      let key = fleet.directory + "/k"
      #expect(
        try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).status == 0)
      let pushed = try SixtyBinary.run(
        [
          "push", "--instance-id", fleet.hosts[0].instanceID, "--os-user", "ops", "--public-key",
          key + ".pub",
          "--endpoint", fleet.endpoint,
        ], environment: fleet.environment)
      #expect(pushed.status == 0, "\(pushed.stderr)")
    }
  }
}

extension BrokerAbuseEndToEndTests {
  /// A signed SendSSHPublicKey request as raw HTTP/1.1, and its Authorization header.
  static func signedPush(
    _ fleet: LocalFleet, publicKey: String, contentType: String = "application/x-amz-json-1.1"
  ) -> (head: [(String, String)], body: String) {
    let body =
      "{\"InstanceId\":\"\(fleet.hosts[0].instanceID)\",\"InstanceOSUser\":\"ops\",\"SSHPublicKey\":\"\(publicKey)\"}"
    var request = SigV4Request(
      method: "POST", path: "/",
      headers: [
        ("Host", "127.0.0.1:\(fleet.brokerPort)"), ("Content-Type", contentType),
        ("X-Amz-Target", "AWSEC2InstanceConnectService.SendSSHPublicKey"),
      ], body: Array(body.utf8))
    SigV4.sign(
      &request,
      credentials: AWSCredentials(
        accessKeyID: LocalFleet.accessKeyID, secretAccessKey: LocalFleet.secret, source: "test"),
      region: "us-east-1", service: "ec2-instance-connect", date: Date())
    return (request.headers, body)
  }

  static func raw(_ head: [(String, String)], _ body: String, close: Bool = true) -> [UInt8] {
    var text = "POST / HTTP/1.1\r\n"
    for (name, value) in head { text += "\(name): \(value)\r\n" }
    text += "Content-Length: \(body.utf8.count)\r\n" + (close ? "Connection: close\r\n" : "") + "\r\n" + body
    return Array(text.utf8)
  }

  static func send(_ fleet: LocalFleet, _ bytes: [UInt8]) throws -> String {
    let client = try RawClient(port: fleet.brokerPort)
    client.send(bytes)
    return client.read(timeout: 10).text
  }

  /// A captured push, sent again with its Authorization header respelled, is refused, also by a
  /// restarted broker (the replay cache sits next to the audit log); a wrong Content-Type is
  /// refused as AWS does; the broker says which region it accepts.
  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func aCapturedPushCannotBeReplayedEvenAfterARestart() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      let key = fleet.directory + "/k"
      #expect(
        try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]).status == 0)
      let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(
        in: .whitespacesAndNewlines)
      let (head, body) = Self.signedPush(fleet, publicKey: publicKey)
      let first = try Self.send(fleet, Self.raw(head, body))
      #expect(first.hasPrefix("HTTP/1.1 200"), "\(first)")
      let respelled = head.map {
        $0.0 == "Authorization" ? ($0.0, $0.1.replacingOccurrences(of: ", ", with: ",")) : $0
      }
      let replay = try Self.send(fleet, Self.raw(respelled, body))
      #expect(
        replay.hasPrefix("HTTP/1.1 403") && replay.contains("a replayed request is refused"), "\(replay)")
      #expect(
        fleet.broker.log.contains(
          "region not set in broker.yml; accepting only requests signed for us-east-1"),
        "\(fleet.broker.log)")
      #expect(FileManager.default.fileExists(atPath: fleet.auditPath + ".replays"))

      try fleet.restartBroker()
      for attempt in [head, respelled] {
        let answer = try Self.send(fleet, Self.raw(attempt, body))
        #expect(
          answer.hasPrefix("HTTP/1.1 403") && answer.contains("a replayed request is refused"), "\(answer)")
      }
      let audit = (try? String(contentsOfFile: fleet.auditPath, encoding: .utf8)) ?? ""
      #expect(audit.components(separatedBy: "\"outcome\":\"accepted\"").count - 1 == 1, "\(audit)")

      // Not AWS JSON 1.1: refused before the signature is even looked at.
      let (jsonHead, jsonBody) = Self.signedPush(fleet, publicKey: publicKey, contentType: "application/json")
      let json = try Self.send(fleet, Self.raw(jsonHead, jsonBody))
      #expect(json.hasPrefix("HTTP/1.1 404") && json.contains("UnknownOperationException"), "\(json)")
    }
  }

  /// Over one kept-alive connection, 300 unsigned requests with a 60 KB X-Amz-Target write
  /// nothing to the audit log until the summary, which is one short record.
  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func unauthenticatedNoiseCostsTheAuditLogOneRecord() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      func size() -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: fleet.auditPath)[.size]) as? Int) ?? 0
      }
      let before = size()
      let client = try RawClient(port: fleet.brokerPort)
      let big = String(repeating: "x", count: 60_000)
      let request = Self.raw(
        [("Host", "x"), ("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", big)], "{}",
        close: false)
      var answered = 0
      var largest = 0
      for _ in 0..<300 {
        guard client.send(request), let answer = client.readJSONAnswer(timeout: 10) else { break }
        #expect(
          answer.hasPrefix("HTTP/1.1 400") && answer.contains("UnknownOperationException"),
          "\(answer.prefix(300))")
        largest = max(largest, answer.utf8.count)
        answered += 1
      }
      #expect(answered == 300)
      #expect(largest < 1024, "an answer of \(largest) bytes echoes the 60 KB target")
      #expect(size() == before, "an unauthenticated request wrote to the audit log")
      // At shutdown the broker writes what it counted.
      fleet.broker.stop()
      let growth = size() - before
      #expect(growth > 0 && growth < 1024, "the audit log grew by \(growth) bytes")
      let show = try SixtyBinary.run(["audit", "show", fleet.auditPath])
      #expect(show.stdout.contains("unauthenticated refused"), "\(show.stdout)")
      #expect(show.stdout.contains("300 requests refused before authentication"), "\(show.stdout)")
    }
  }
}

/// Results gathered from several threads.
final class Results: @unchecked Sendable {
  private let lock = NSLock()
  private var items: [(String, TimeInterval?)] = []
  func add(_ kind: String, _ value: TimeInterval?) { lock.withLock { items.append((kind, value)) } }
  var all: [(String, TimeInterval?)] { lock.withLock { items } }
}
