import Crypto
import Foundation
import SixtyAgentCore
import SixtyKeys
import Testing

/// A one-answer HTTP server on loopback: each connection gets `answer` after its request head,
/// then is closed. Serves `count` connections on a thread of its own.
final class CannedHTTPServer: @unchecked Sendable {
  let port: Int
  private let listener: Int32
  private let done = DispatchSemaphore(value: 0)

  init(answer: [UInt8], count: Int = 1) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard bound else {
      close(fd)
      throw Spawn.Failure(description: "cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
    }
    listener = fd
    port = Int(UInt16(bigEndian: address.sin_port))
    let listener = fd
    let done = done
    Thread.detachNewThread {
      for _ in 0..<count {
        let connection = accept(listener, nil, nil)
        guard connection >= 0 else { break }
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !request.suffix(4).elementsEqual([13, 10, 13, 10]) {
          let n = read(connection, &buffer, buffer.count)
          if n <= 0 { break }
          request += buffer[0..<n]
        }
        var sent = 0
        while sent < answer.count {
          let n = answer[sent...].withUnsafeBytes {
            send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
          }
          if n <= 0 { break }
          sent += n
        }
        close(connection)
      }
      done.signal()
    }
  }

  /// Waits (at most 10 s) for the thread to serve its connections, then closes the listener.
  func finish() {
    _ = done.wait(timeout: .now() + 10)
    close(listener)
  }
}

/// `sixty-agent` as sshd runs it: keys only from a verified, fresh, matching list; nothing at all
/// (and a non-zero exit) on any error.
@Suite(.serialized) struct AgentTests {
  func agent(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String, seconds: Double)
  {
    let start = Date()
    let result = try runProgram(LocalFleet.agentPath, arguments)
    return (result.status, result.stdout, result.stderr, Date().timeIntervalSince(start))
  }

  func writeConfig(
    _ fleet: LocalFleet, broker: String? = nil, key: String? = nil, token: String? = nil, extra: String = ""
  )
    throws -> String
  {
    let host = fleet.hosts[0]
    let path = fleet.directory + "/agent-\(UUID().uuidString).yml"
    try """
    # test agent
    broker: \(broker ?? fleet.endpoint)
    instance_id: \(host.instanceID)
    token: "\(token ?? host.token)"
    broker_public_key: \(key ?? fleet.brokerPublicKey)
    syslog: false
    \(extra)
    """.write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o600)  // the token is inline
    return path
  }

  func push(_ fleet: LocalFleet, key: String, user: String) throws {
    let result = try SixtyBinary.run(
      [
        "push", "--instance-id", fleet.hosts[0].instanceID, "--os-user", user, "--public-key", key,
        "--endpoint", fleet.endpoint,
      ], environment: fleet.environment)
    #expect(result.status == 0, "\(result.stderr)")
  }

  /// A new Ed25519 key, pushed to the fleet's broker for `ops`: its private key's path.
  func pushedKey(_ fleet: LocalFleet) throws -> String {
    let keyPath = fleet.directory + "/k"
    #expect(
      try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath]).status == 0)
    try push(fleet, key: keyPath + ".pub", user: "ops")
    return keyPath
  }

  @Test func printsVerifiedKeysAndFailsClosed() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      let keyPath = try pushedKey(fleet)
      let fingerprint = try runProgram("/usr/bin/ssh-keygen", ["-lf", keyPath + ".pub"]).stdout.split(
        separator: " ")[1]
      let config = try writeConfig(fleet)

      let ok = try agent(["ops", String(fingerprint), "--config", config])
      #expect(ok.status == 0, "\(ok.stderr)")
      let publicKey = try String(contentsOfFile: keyPath + ".pub", encoding: .utf8).split(separator: " ")
        .prefix(2)
        .joined(separator: " ")
      let lines = ok.stdout.split(separator: "\n")
      #expect(lines.count == 1)
      #expect(lines.first?.hasPrefix("expiry-time=\"") == true)
      #expect(lines.first?.hasSuffix("Z\",from=\"127.0.0.0/8\" \(publicKey)") == true)
      #expect(ok.stderr.contains("offered key \(fingerprint) for ops"))
      // Without a fingerprint: every active key; another fingerprint or user: none.
      #expect(try agent(["ops", "--config", config]).stdout == ok.stdout)
      let other = try agent(["ops", "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "--config", config])
      #expect(other.status == 0 && other.stdout.isEmpty)
      let nobody = try agent(["deploy", "--config", config])
      #expect(nobody.status == 0 && nobody.stdout.isEmpty)
      // The environment variable names the configuration too.
      let viaEnvironment = try runProgram(
        LocalFleet.agentPath, ["ops"],
        environment: ProcessInfo.processInfo.environment.merging(["SIXTY_AGENT_CONFIG": config]) { $1 })
      #expect(viaEnvironment.stdout == ok.stdout)

      // Fail closed: a different pinned key, a wrong token, a dead broker, a broker that hangs,
      // a bad configuration, a hostile user name.
      let otherKey = "3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w0="
      let cases: [([String], Int32, String)] = [
        (["ops", "--config", try writeConfig(fleet, key: otherKey)], 1, "signature does not verify"),
        (["ops", "--config", try writeConfig(fleet, token: "wrong-token-wrong-token")], 1, "HTTP 401"),
        (
          ["ops", "--config", try writeConfig(fleet, broker: "http://127.0.0.1:\(LocalProcess.freePort())")],
          1,
          "the connection was refused"
        ),
        // An https broker is fetched by sixty-agent-tls (libcurl's wording).
        (
          [
            "ops", "--config", try writeConfig(fleet, broker: "https://127.0.0.1:\(LocalProcess.freePort())"),
          ],
          1,
          "Couldn't connect to server"
        ),
        (
          ["ops", "--config", try writeConfig(fleet, extra: "timeout: 9s")], 2, "expected a duration up to 5s"
        ),
        (["ops", "--config", try writeConfig(fleet, extra: "colour: blue")], 2, "unknown key 'colour'"),
        (["ops", "--config", fleet.directory + "/missing.yml"], 2, "cannot read the agent configuration"),
        (["-oProxyCommand=x", "--config", config], 2, "is not a valid OS user"),
        (["a\nb", "--config", config], 2, "is not a valid OS user"),
        ([], 2, "expected USER"),
      ]
      for (arguments, status, fragment) in cases {
        let result = try agent(arguments)
        #expect(result.status == status, "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty, "\(arguments)")
        #expect(result.stderr.contains(fragment), "\(arguments): \(result.stderr)")
      }
    }
  }

  /// sshd starts the agent on every login, so it is one static program (no program interpreter:
  /// nothing to load or relocate), and it looks the broker's name up without NSS modules, through
  /// /etc/hosts here.
  @Test func isStaticAndLooksBrokerNamesUp() throws {
    let image = try Data(contentsOf: URL(fileURLWithPath: LocalFleet.agentPath))
    func integer(_ offset: Int, _ size: Int) -> Int {
      (0..<size).reduce(0) { $0 | Int(image[offset + $1]) << (8 * $1) }
    }
    #expect(image.prefix(4) == Data([0x7f, 0x45, 0x4c, 0x46]) && image[4] == 2, "a 64-bit ELF file")
    let (headers, size, count) = (integer(0x20, 8), integer(0x36, 2), integer(0x38, 2))
    let types = (0..<count).map { integer(headers + $0 * size, 4) }
    #expect(types.contains(1), "loadable segments")
    #expect(!types.contains(3), "no PT_INTERP: sixty-agent is linked statically")

    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      _ = try pushedKey(fleet)
      let byAddress = try agent(["ops", "--config", try writeConfig(fleet)])
      let named = fleet.endpoint.replacingOccurrences(of: "127.0.0.1", with: "localhost")
      #expect(named != fleet.endpoint)
      let byName = try agent(["ops", "--config", try writeConfig(fleet, broker: named)])
      #expect(byName.status == 0, "\(byName.stderr)")
      #expect(!byName.stdout.isEmpty && byName.stdout == byAddress.stdout)
    }
  }

  @Test func aHangingBrokerIsCutOffAtTheTimeout() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      // Accepts connections and never answers.
      let port = LocalProcess.freePort()
      let silent = try LocalProcess(
        LocalProcess.which("python3")!,
        [
          "-c",
          "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',\(port)))\ns.listen(16)\nc=[]\nwhile True:\n  c.append(s.accept())\n",
        ], logPath: fleet.directory + "/silent.log")
      defer { silent.stop() }
      #expect(LocalProcess.waitForPort(port))
      let config = try writeConfig(fleet, broker: "http://127.0.0.1:\(port)", extra: "timeout: 1s")
      let result = try agent(["ops", "--config", config])
      #expect(result.status == 1)
      #expect(result.stdout.isEmpty)
      #expect(result.stderr.contains("did not answer within 1.0 s"), "\(result.stderr)")
      #expect(result.seconds < 3)
    }
  }

  /// A hostile broker announcing a chunk of 2^63-1 bytes: the agent fails closed with a message
  /// (it used to trap on the overflow, SIGILL).
  @Test func aHugeChunkSizeFailsClosedWithAMessage() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      let sizes = ["7fffffffffffffff", "ffffffffffffffffffff", "+10", "200000"]
      for size in sizes {
        let server = try CannedHTTPServer(
          answer: Array(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\nabc\r\n0\r\n\r\n".utf8)
        )
        defer { server.finish() }
        let config = try writeConfig(fleet, broker: "http://127.0.0.1:\(server.port)")
        let result = try agent(["ops", "--config", config])
        #expect(result.status == 1, "\(size): \(result.stderr)")
        #expect(result.stdout.isEmpty)
        let expected =
          size == "+10"
          ? "a chunk size '+10' is not hexadecimal"
          : "a chunk size of \(size.prefix(20)) (hex) is larger than"
        #expect(result.stderr.contains(expected), "\(size): \(result.stderr)")
      }
    }
  }

  /// "offered key" is logged for the keys printed, not for entries dropped on the way (expired,
  /// for another key, or with an unsafe key or from= value).
  @Test func onlyPrintedKeysAreLoggedAsOffered() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      let signing = Curve25519.Signing.PrivateKey()
      let key = try SSHKeyPair.generate(.ed25519).authorizedKey
      let now = Int64(Date().timeIntervalSince1970)
      func entry(_ fingerprint: String, key: String = key, expires: Int64 = now + 60, from: [String] = [])
        -> SignedKeyList.Entry
      {
        SignedKeyList.Entry(
          key: key, fingerprint: fingerprint, expiresAt: expires, requestID: "r-\(fingerprint)",
          principal: "deploy", from: from)
      }
      let list = SignedKeyList(
        instanceID: fleet.hosts[0].instanceID, osUser: "ops", issuedAt: now,
        keys: [
          entry("SHA256:printed"),
          entry("SHA256:expired", expires: now - 5),
          entry("SHA256:badfrom", from: ["10.0.0.0/8\",command=\"/bin/sh"]),
          entry("SHA256:badkey", key: key + " trailing"),
        ])
      let body = try list.signed(with: signing)
      let server = try CannedHTTPServer(
        answer: Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
          + Array(body))
      defer { server.finish() }
      let config = try writeConfig(
        fleet, broker: "http://127.0.0.1:\(server.port)",
        key: signing.publicKey.rawRepresentation.base64EncodedString())
      let result = try agent(["ops", "--config", config])
      #expect(result.status == 0, "\(result.stderr)")
      #expect(result.stdout.split(separator: "\n").count == 1 && result.stdout.hasSuffix(" \(key)\n"))
      #expect(result.stderr.contains("offered key SHA256:printed for ops"), "\(result.stderr)")
      for dropped in ["SHA256:expired", "SHA256:badfrom", "SHA256:badkey"] {
        #expect(!result.stderr.contains(dropped), "\(dropped) was logged: \(result.stderr)")
      }
    }
  }

  /// The token inline makes agent.yml a secret: readable by others, the agent refuses it.
  @Test func anAgentConfigurationWithAnInlineTokenMustBeOwnerOnly() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      _ = try pushedKey(fleet)
      let config = try writeConfig(fleet)
      chmod(config, 0o644)
      let refused = try agent(["ops", "--config", config])
      #expect(refused.status == 2)
      #expect(refused.stdout.isEmpty)
      #expect(
        refused.stderr.contains(
          "the agent configuration \(config) holds secrets inline (the agent token) and is readable by others (mode 0644); chmod 600 it"
        ), "\(refused.stderr)")
      chmod(config, 0o600)
      let served = try agent(["ops", "--config", config])
      #expect(served.status == 0 && !served.stdout.isEmpty, "\(served.stderr)")
    }
  }
}
