import Foundation
import Testing

/// Several brokers on both sides, with real parts: an agent whose `broker:` list begins with a
/// dead or failing broker still lets a login in through the next, and `sixty run`, `exec` and
/// `push` with `--endpoint DEAD,LIVE` push every key through the live one. All traffic stays on
/// loopback; every process started here is stopped by its pid.
@Suite(.serialized) struct FailoverEndToEndTests {
  /// An HTTP server on loopback answering every request with `status` (a broker replica in
  /// trouble), until stopped.
  static func failingServer(status: Int, directory: String) throws -> (LocalProcess, Int) {
    let port = LocalProcess.freePort()
    let script = """
      import http.server
      class H(http.server.BaseHTTPRequestHandler):
        def answer(self):
          n = int(self.headers.get('Content-Length') or 0)
          if n: self.rfile.read(n)
          body = b'{"__type":"InternalFailure","message":"replica in trouble"}'
          self.send_response(\(status))
          self.send_header('Content-Type', 'application/json')
          self.send_header('Content-Length', str(len(body)))
          self.end_headers()
          self.wfile.write(body)
          with open('\(directory)/failing-\(port).hits', 'a') as f: f.write(self.command + '\\n')
        do_GET = answer
        do_POST = answer
        def log_message(self, *a): pass
      http.server.HTTPServer(('127.0.0.1', \(port)), H).serve_forever()
      """
    let server = try LocalProcess(
      LocalProcess.which("python3")!, ["-c", script], logPath: directory + "/failing-\(port).log")
    guard LocalProcess.waitForPort(port) else {
      server.stop()
      throw Spawn.Failure(description: "the failing server did not start: \(server.log)")
    }
    return (server, port)
  }

  static func hits(_ directory: String, port: Int) -> Int {
    ((try? String(contentsOfFile: directory + "/failing-\(port).hits", encoding: .utf8)) ?? "")
      .split(separator: "\n").count
  }

  func keypair(_ fleet: LocalFleet) throws -> String {
    let path = fleet.directory + "/k-\(UUID().uuidString.prefix(8))"
    #expect(try runProgram("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path]).status == 0)
    return path
  }

  func acceptedPushes(_ fleet: LocalFleet) -> [String] {
    ((try? String(contentsOfFile: fleet.auditPath, encoding: .utf8)) ?? "").split(separator: "\n")
      .map(String.init).filter {
        $0.contains("\"event\":\"push\"") && $0.contains("\"outcome\":\"accepted\"")
      }
  }

  /// A login through sshd whose agent lists a closed port first, then the real broker.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func anAgentWhoseFirstBrokerIsClosedLetsALoginInThroughTheNext() throws {
    let closed = LocalProcess.freePort()
    try withLocalFleet(
      LocalFleet(count: 1, agentBroker: { "[http://127.0.0.1:\(closed), \($0)]" })
    ) { fleet in
      let host = fleet.hosts[0]
      let key = try keypair(fleet)
      // Pushed through a list that begins with the same dead port.
      let pushed = try SixtyBinary.run(
        [
          "push", "--instance-id", host.instanceID, "--os-user", fleet.user, "--public-key", key + ".pub",
          "--endpoint", "http://127.0.0.1:\(closed),\(fleet.endpoint)",
        ], environment: fleet.environment)
      #expect(pushed.status == 0, "\(pushed.stderr)")
      #expect(
        pushed.stderr.contains(
          "sixty: http://127.0.0.1:\(closed) failed (the connection was refused); pushed through \(fleet.endpoint)"
        ),
        "\(pushed.stderr)")
      let login = try runProgram("/usr/bin/ssh", fleet.sshArguments(host, key: key) + ["echo", "in"])
      #expect(login.status == 0, "\(login.stderr)\n\(host.sshLog)")
      #expect(login.stdout == "in\n")
      // sixty ssh takes the list the same way.
      var environment = fleet.environment
      environment["SIXTY_KEY_DIR"] = fleet.directory + "/sixty-keys"
      try FileManager.default.createDirectory(
        atPath: fleet.directory + "/sixty-keys", withIntermediateDirectories: true)
      let session = try SixtyBinary.run(
        [
          "ssh", "web-1", "-i", try fleet.writeInventory(), "--endpoint",
          "http://127.0.0.1:\(closed), \(fleet.endpoint)", "-F", "/dev/null", "-o",
          "StrictHostKeyChecking=no",
          "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "--", "echo", "via sixty ssh",
        ], environment: environment)
      #expect(session.status == 0, "\(session.stderr)\n\(host.sshLog)")
      #expect(session.stdout == "via sixty ssh\n")
      #expect(
        session.stderr.contains(
          "sixty: http://127.0.0.1:\(closed) failed (the connection was refused); pushed through \(fleet.endpoint)"
        ),
        "\(session.stderr)")
    }
  }

  /// A login through sshd whose agent lists (as a block list) a broker that answers 500 first.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func anAgentWhoseFirstBrokerAnswers500LetsALoginInThroughTheNext() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sixty-failing-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (failing, port) = try Self.failingServer(status: 500, directory: directory)
    defer { failing.stop() }
    try withLocalFleet(
      LocalFleet(count: 1, agentBroker: { "\n  - http://127.0.0.1:\(port)\n  - \($0)   # the live one" })
    ) { fleet in
      let host = fleet.hosts[0]
      let key = try keypair(fleet)
      // Before any push, nobody gets in (the live broker has no key; the failing one never counts).
      #expect(try runProgram("/usr/bin/ssh", fleet.sshArguments(host, key: key) + ["true"]).status == 255)
      let pushed = try SixtyBinary.run(
        [
          "push", "--instance-id", host.instanceID, "--os-user", fleet.user, "--public-key", key + ".pub",
          "--endpoint", fleet.endpoint,
        ], environment: fleet.environment)
      #expect(pushed.status == 0, "\(pushed.stderr)")
      let before = Self.hits(directory, port: port)
      #expect(before >= 1, "the agent asked the failing broker first")
      let login = try runProgram("/usr/bin/ssh", fleet.sshArguments(host, key: key) + ["echo", "in"])
      #expect(login.status == 0, "\(login.stderr)\n\(host.sshLog)")
      #expect(login.stdout == "in\n")
      #expect(Self.hits(directory, port: port) > before, "each login asks the first broker first")
    }
  }

  /// The agent itself, without sshd: closed, 500, hanging and unverifiable first brokers; mixed
  /// http and https; none valid.
  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func theAgentTriesItsBrokersInOrderWithinTheTimeout() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false)) { fleet in
      let key = try keypair(fleet)
      let pushed = try SixtyBinary.run(
        [
          "push", "--instance-id", fleet.hosts[0].instanceID, "--os-user", "ops", "--public-key",
          key + ".pub",
          "--endpoint", fleet.endpoint,
        ], environment: fleet.environment)
      #expect(pushed.status == 0, "\(pushed.stderr)")
      let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ").prefix(
        2
      )
      .joined(separator: " ")
      func agent(_ broker: String, timeout: String = "3s") throws -> (
        status: Int32, stdout: String, stderr: String, seconds: Double
      ) {
        let path = fleet.directory + "/agent-\(UUID().uuidString).yml"
        try """
        broker: \(broker)
        instance_id: \(fleet.hosts[0].instanceID)
        token: "\(fleet.hosts[0].token)"
        broker_public_key: \(fleet.brokerPublicKey)
        timeout: \(timeout)
        syslog: false
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let start = Date()
        let result = try runProgram(LocalFleet.agentPath, ["ops", "--config", path])
        return (result.status, result.stdout, result.stderr, Date().timeIntervalSince(start))
      }
      let closed = LocalProcess.freePort()
      let (failing, failingPort) = try Self.failingServer(status: 503, directory: fleet.directory)
      defer { failing.stop() }
      // Accepts connections and never answers.
      let hangingPort = LocalProcess.freePort()
      let hanging = try LocalProcess(
        LocalProcess.which("python3")!,
        [
          "-c",
          "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',\(hangingPort)))\ns.listen(16)\nc=[]\nwhile True:\n  c.append(s.accept())\n",
        ], logPath: fleet.directory + "/hanging.log")
      defer { hanging.stop() }
      #expect(LocalProcess.waitForPort(hangingPort))
      let live = fleet.endpoint
      let cases: [(String, String)] = [
        (
          "[http://127.0.0.1:\(closed), \(live)]",
          "(http://127.0.0.1:\(closed)) failed: cannot reach it: the connection was refused; trying the next."
        ),
        ("[http://127.0.0.1:\(failingPort), \(live)]", "(http://127.0.0.1:\(failingPort)) failed: HTTP 503:"),
        // An https broker first: sixty-agent hands over to sixty-agent-tls, which goes on to the
        // http one with the agent's own client.
        ("[https://127.0.0.1:\(closed), \(live)]", "(https://127.0.0.1:\(closed)) failed: cannot reach it:"),
        (
          "[http://127.0.0.1:\(closed), https://127.0.0.1:\(failingPort), \(live)]",
          "broker 2 of 3 (https://127.0.0.1:\(failingPort)) failed"
        ),
      ]
      for (broker, logged) in cases {
        let result = try agent(broker)
        #expect(result.status == 0, "\(broker): \(result.stderr)")
        #expect(result.stdout.hasSuffix(" \(publicKey)\n"), "\(broker): \(result.stdout)")
        #expect(result.stderr.contains(logged), "\(broker): \(result.stderr)")
      }
      // A hanging first broker takes only its share (2 s / 2 brokers) of the timeout.
      let slow = try agent("[http://127.0.0.1:\(hangingPort), \(live)]", timeout: "2s")
      #expect(slow.status == 0, "\(slow.stderr)")
      #expect(slow.stdout.hasSuffix(" \(publicKey)\n"))
      #expect(slow.stderr.contains("no answer within its 1.00 s share of the timeout"), "\(slow.stderr)")
      #expect(slow.seconds < 1.9, "\(slow.seconds) s")
      // None valid: nothing printed, every broker named with its failure.
      let none = try agent("[http://127.0.0.1:\(closed), http://127.0.0.1:\(failingPort)]")
      #expect(none.status == 1 && none.stdout.isEmpty)
      #expect(
        none.stderr.contains(
          "none of the 2 brokers gave a valid key list (http://127.0.0.1:\(closed): cannot reach it: the connection was refused; http://127.0.0.1:\(failingPort): HTTP 503: "
        ), "\(none.stderr)")
      // None valid, across the hand-over to sixty-agent-tls: every broker still named.
      let mixed = try agent("[http://127.0.0.1:\(closed), https://127.0.0.1:\(closed)]")
      #expect(mixed.status == 1 && mixed.stdout.isEmpty)
      #expect(
        mixed.stderr.contains(
          "broker 1 of 2 (http://127.0.0.1:\(closed)) failed: cannot reach it: the connection was refused; trying the next."
        ), "\(mixed.stderr)")
      #expect(
        mixed.stderr.contains(
          "none of the 2 brokers gave a valid key list (http://127.0.0.1:\(closed): failed (logged above); https://127.0.0.1:\(closed): cannot reach it: "
        ), "\(mixed.stderr)")
      // An answer that does not verify (not a signed list): the next broker.
      let unsigned = try CannedHTTPServer(
        answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".utf8))
      defer { unsigned.finish() }
      let rejected = try agent("[http://127.0.0.1:\(unsigned.port), \(live)]")
      #expect(rejected.status == 0 && rejected.stdout.hasSuffix(" \(publicKey)\n"), "\(rejected.stderr)")
      #expect(rejected.stderr.contains("failed: rejected its answer:"), "\(rejected.stderr)")
      // A 4xx answer is a refusal every replica gives alike: it ends the fetch, nothing printed.
      let (refusing, refusingPort) = try Self.failingServer(status: 403, directory: fleet.directory)
      defer { refusing.stop() }
      let refused = try agent("[http://127.0.0.1:\(refusingPort), \(live)]")
      #expect(refused.status == 1 && refused.stdout.isEmpty, "\(refused.stderr)")
      #expect(
        refused.stderr.contains("127.0.0.1: the broker refused the key-list request (HTTP 403: "),
        "\(refused.stderr)")
    }
  }

  /// `sixty exec` and `sixty run` with `--endpoint DEAD,LIVE`: every host pushed through the live
  /// one, the failover said once per push that made it, and later pushes go straight to the live one.
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aRunWhoseFirstEndpointIsDeadPushesEveryHostThroughTheNext() throws {
    try withLocalFleet(LocalFleet(count: 4)) { fleet in
      let inventory = try fleet.writeInventory()
      let closed = LocalProcess.freePort()
      let endpoints = "http://127.0.0.1:\(closed),\(fleet.endpoint)"
      let plan = try SixtyBinary.run(
        ["exec", "all", "-i", inventory, "--endpoint", endpoints, "--dry-run", "--", "true"],
        environment: fleet.environment)
      #expect(plan.status == 0, "\(plan.stderr)")
      #expect(
        plan.stdout.contains(
          "key pushes go to http://127.0.0.1:\(closed), then \(fleet.endpoint) (the next on"),
        "\(plan.stdout)")
      let result = try SixtyBinary.run(
        [
          "exec", "all", "-i", inventory, "--endpoint", endpoints, "--forks", "1", "--no-progress", "-v",
          "--", "true",
        ],
        environment: fleet.environment)
      #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
      let failovers = result.stderr.split(separator: "\n").filter { $0.contains("; pushed through") }
      // One host at a time: the first push fails over, the next three go straight to the live one.
      #expect(failovers.count == 1, "\(result.stderr)")
      #expect(
        failovers.first?.hasSuffix(
          "key push: http://127.0.0.1:\(closed) failed (the connection was refused); pushed through \(fleet.endpoint)"
        ) == true, "\(result.stderr)")
      #expect(acceptedPushes(fleet).count == 4)
      for host in fleet.hosts {
        #expect(acceptedPushes(fleet).contains { $0.contains(host.instanceID) }, "\(host.name)")
      }

      // The same through the environment variable the AWS CLI reads, with a replica answering 503
      // first and four hosts at once.
      let (failing, port) = try Self.failingServer(status: 503, directory: fleet.directory)
      defer { failing.stop() }
      var environment = fleet.environment
      environment["AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT"] = "http://127.0.0.1:\(port), \(fleet.endpoint)"
      let playbook = fleet.directory + "/failover.yml"
      try "name: failover\nhosts: all\ntasks:\n  - name: t\n    command: [\"true\"]\n".write(
        toFile: playbook, atomically: true, encoding: .utf8)
      let run = try SixtyBinary.run(
        ["run", playbook, "-i", inventory, "--no-progress"], environment: environment)
      #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
      #expect(acceptedPushes(fleet).count == 8)
      let hits = Self.hits(fleet.directory, port: port)
      // The run's question of what the endpoint takes (answered 503, so asked of the next), then at
      // most the pushes that started together.
      #expect(
        hits >= 2 && hits <= 5, "at most the pushes that started together reach the failing one: \(hits)")
      #expect(
        run.stderr.contains("failed (HTTP 503 (InternalFailure): replica in trouble); pushed through"),
        "\(run.stderr)")

      // A bad list is refused before anything is pushed, naming the item.
      let bad = try SixtyBinary.run(
        ["exec", "all", "-i", inventory, "--endpoint", "\(fleet.endpoint),ftp://x", "--", "true"],
        environment: fleet.environment)
      #expect(bad.status == 2, "\(bad.stderr)")
      #expect(
        bad.stderr.contains(
          "--endpoint lists 'ftp://x' (item 2 of 2), which is not an http(s) URL; expected something like http://127.0.0.1:8600."
        ), "\(bad.stderr)")
      environment["AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT"] = "\(fleet.endpoint),,"
      let badEnvironment = try SixtyBinary.run(
        ["run", playbook, "-i", inventory, "--no-progress"], environment: environment)
      #expect(badEnvironment.status == 2, "\(badEnvironment.stderr)")
      #expect(
        badEnvironment.stderr.contains(
          "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT '\(fleet.endpoint),,' has an empty item (item 2 of 3)"),
        "\(badEnvironment.stderr)")
      #expect(acceptedPushes(fleet).count == 8)
    }
  }
}
