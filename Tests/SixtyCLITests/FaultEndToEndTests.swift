import Foundation
import Testing

/// Faults around a run against the local fleet: what Sixty does when its own disk fills up or
/// its broker is gone.
@Suite(.serialized) struct FaultEndToEndTests {
  func write(_ text: String, _ path: String) throws -> String {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  /// A 512 KB tmpfs at `path` (root only), filled to the last byte.
  func fullDisk(at path: String) throws -> () -> Void {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let mounted = try runProgram("/bin/mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", path])
    try #require(mounted.status == 0, "mount failed: \(mounted.stderr)")
    // Fill it: dd stops with ENOSPC.
    _ = try runProgram("/bin/dd", ["if=/dev/zero", "of=\(path)/filler", "bs=4k"])
    return { _ = try? runProgram("/bin/umount", [path]) }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aFullDiskForHistoryAndReportStillPrintsTheResult() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let full = fleet.directory + "/full"
      let unmount = try fullDisk(at: full)
      defer { unmount() }
      let playbook = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      var env = fleet.environment
      env["SIXTY_HISTORY"] = full + "/state/history.sqlite"
      let result = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          full + "/report.json",
        ],
        environment: env)
      // The run itself succeeded and says so; what could not be written is named.
      #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
      #expect(result.stdout.contains("RECAP"))
      #expect(result.stdout.contains("web-1") && result.stdout.contains("web-2"))
      #expect(
        result.stdout.contains("sixty: warning: cannot ") && result.stdout.contains("the run history"),
        "\(result.stdout)")
      #expect(
        result.stdout.contains("sixty: error: cannot write the report \(full)/report.json"),
        "\(result.stdout)")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aBrokerThatIsDownFailsEveryHostWithAClearErrorAndBoundedTime() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let playbook = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      let closed = "http://127.0.0.1:\(LocalProcess.freePort())"
      let started = Date()
      let result = try SixtyBinary.run(
        ["run", playbook, "-i", try fleet.writeInventory(), "--endpoint", closed],
        environment: fleet.environment)
      #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
      #expect(Date().timeIntervalSince(started) < 60)
      #expect(result.stdout.contains("the connection was refused"), "\(result.stdout)")
      #expect(result.stdout.contains(closed), "\(result.stdout)")
    }
  }

  /// Peak resident memory of a process so far (VmHWM), in bytes.
  static func peakMemory(_ pid: pid_t) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
      let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return nil }
    return kb * 1024
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aHundredMegabytesOfOutputAreCappedAndMemoryStaysBounded() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let playbook = try write(
        """
        name: loud
        hosts: all
        tasks:
          - name: flood
            shell: head -c 100000000 /dev/zero | tr '\\0' a
        """, fleet.directory + "/loud.yml")
      let reportPath = fleet.directory + "/report.json"
      let run = try LocalProcess(
        SixtyBinary.path,
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          reportPath,
          "--group-output", "--no-progress",
        ],
        environment: fleet.environment, logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      var peak = 0
      let deadline = Date().addingTimeInterval(120)
      while run.isRunning && Date() < deadline {
        if let now = Self.peakMemory(run.pid) { peak = max(peak, now) }
        Thread.sleep(forTimeInterval: 0.02)
      }
      #expect(run.exitStatus == 0, "\(run.log.suffix(2000))")
      // 200 MB went through; Sixty kept 1 MB per task and stayed far below what it saw.
      #expect(peak > 0 && peak < 120 * 1024 * 1024, "peak RSS \(peak / 1024 / 1024) MB")
      let data = try Data(contentsOf: URL(fileURLWithPath: reportPath))
      #expect(data.count < 3 * 1024 * 1024, "the report is \(data.count) bytes")
      let text = String(decoding: data, as: UTF8.self)
      #expect(
        text.contains("[sixty: output truncated: 98951424 more bytes not kept (cap 1048576 bytes)]"),
        "\(text.prefix(300))")
    }
  }

  /// An endpoint in front of the real broker: answers 500 for one instance, throttles another
  /// twice, and forwards everything else unchanged (the signature covers the Host header it keeps).
  static let faultyProxy = """
    import http.server, http.client, json, os, sys
    broker = sys.argv[2]
    counts = {}
    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers['Content-Length']))
            instance = json.loads(body).get('InstanceId', '')
            counts[instance] = counts.get(instance, 0) + 1
            open(os.path.join(sys.argv[3], instance), 'a').write('x')
            if instance == 'i-0000000000000001':
                return self.answer(500, {'__type': 'InternalFailure', 'message': 'the service is broken'})
            if instance == 'i-0000000000000002' and counts[instance] <= 2:
                return self.answer(400, {'__type': 'ThrottlingException', 'message': 'Rate exceeded'})
            c = http.client.HTTPConnection(broker, timeout=10)
            c.request('POST', self.path, body, headers={k: v for k, v in self.headers.items()})
            r = c.getresponse()
            data = r.read()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ('content-length', 'transfer-encoding', 'connection', 'date', 'server'):
                    self.send_header(k, v)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def answer(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/x-amz-json-1.1')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def log_message(self, *a):
            pass
    http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
    """

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func serverErrorsAndThrottlingAreRetriedBoundedlyAndOtherHostsAreUnaffected() throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let counts = fleet.directory + "/counts"
      try FileManager.default.createDirectory(atPath: counts, withIntermediateDirectories: true)
      let port = LocalProcess.freePort()
      let proxy = try LocalProcess(
        LocalProcess.which("python3")!,
        ["-c", Self.faultyProxy, String(port), "127.0.0.1:\(fleet.brokerPort)", counts],
        logPath: fleet.directory + "/proxy.log")
      defer { proxy.stop() }
      #expect(LocalProcess.waitForPort(port))
      let playbook = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      let reportPath = fleet.directory + "/report.json"
      let result = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", "http://127.0.0.1:\(port)",
          "--report", reportPath,
        ],
        environment: fleet.environment)
      #expect(result.status == 1, "\(result.stdout)\(result.stderr)\(proxy.log)")
      let report = try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath)))
          as? [String: Any])
      let hosts = (report["plays"] as? [[String: Any]])?.first?["hosts"] as? [String: [String: Any]] ?? [:]
      #expect(hosts["web-1"]?["status"] as? String == "unreachable", "\(hosts)")
      let message = hosts["web-1"]?["message"] as? String ?? ""
      #expect(message.contains("InternalFailure") && message.contains("the service is broken"), "\(message)")
      #expect(hosts["web-2"]?["status"] as? String == "ok", "\(hosts)")
      #expect(hosts["web-3"]?["status"] as? String == "ok", "\(hosts)")
      func attempts(_ id: String) -> Int {
        ((try? String(contentsOfFile: counts + "/" + id, encoding: .utf8)) ?? "").count
      }
      // Bounded: 5 attempts for the broken one, 3 for the throttled one, 1 for the rest.
      #expect(attempts("i-0000000000000001") == 5)
      #expect(attempts("i-0000000000000002") == 3)
      #expect(attempts("i-0000000000000003") == 1)
    }
  }

  @Test(.enabled(if: LocalFleet.canRun && LocalFleet.hasFaketime, "needs root, sshd and libfaketime"))
  func aBrokerClockTenMinutesAheadIsAClearErrorNotAHang() throws {
    try withLocalFleet(LocalFleet(count: 2, brokerClockOffset: "+10m")) { fleet in
      let playbook = try write(
        "name: quick\nhosts: all\ntasks:\n  - name: hi\n    command: [echo, hi]\n",
        fleet.directory + "/quick.yml")
      let started = Date()
      let result = try SixtyBinary.run(
        ["run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint],
        environment: fleet.environment)
      #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
      #expect(Date().timeIntervalSince(started) < 30, "a clock error is not retried")
      #expect(result.stdout.contains("InvalidSignatureException"), "\(result.stdout)")
      #expect(
        result.stdout.contains("is more than 300 seconds away from the broker's time"), "\(result.stdout)")
      #expect(result.stdout.contains("check the clocks"), "\(result.stdout)")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aBrokerThatDiesMidRunFailsOnlyTheHostsNotYetPushed() throws {
    try withLocalFleet(LocalFleet(count: 3)) { fleet in
      let playbook = try write(
        """
        name: serial
        hosts: all
        policy: {concurrency: 1}
        tasks:
          - name: work
            command: [sleep, "3"]
        """, fleet.directory + "/serial.yml")
      let reportPath = fleet.directory + "/report.json"
      let run = try LocalProcess(
        SixtyBinary.path,
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "--report",
          reportPath, "--no-progress",
        ],
        environment: fleet.environment, logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      // Once the first host is connected, the broker goes away.
      let deadline = Date().addingTimeInterval(20)
      func pushed() -> Bool {
        String(decoding: FileManager.default.contents(atPath: fleet.auditPath) ?? Data(), as: UTF8.self)
          .contains("accepted")
      }
      while !pushed() && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
      Thread.sleep(forTimeInterval: 1)
      fleet.broker.stop()
      let end = Date().addingTimeInterval(60)
      while run.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.1) }
      #expect(run.exitStatus == 1, "\(run.log)")
      let report = try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath)))
          as? [String: Any])
      let hosts = (report["plays"] as? [[String: Any]])?.first?["hosts"] as? [String: [String: Any]] ?? [:]
      #expect(hosts["web-1"]?["status"] as? String == "ok", "\(hosts)")
      for name in ["web-2", "web-3"] {
        #expect(hosts[name]?["status"] as? String == "unreachable", "\(hosts)")
        #expect(
          (hosts[name]?["message"] as? String)?.contains("the connection was refused") == true, "\(hosts)")
      }
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root"))
  func theBrokerTakesTenThousandPushesFromFiftyClientsAndAuditsEveryOne() throws {
    try withLocalFleet(LocalFleet(count: 1, startSSHD: false, pushRate: 1_000_000)) { fleet in
      func records() throws -> Int {
        let verified = try SixtyBinary.run(["audit", "verify", fleet.auditPath])
        #expect(verified.status == 0, "\(verified.stderr)")
        // "FILE: ok, N records, head …"
        let words = verified.stdout.split(separator: " ")
        return words.firstIndex(of: "ok,").flatMap { Int(words[$0 + 1]) } ?? -1
      }
      let before = FileManager.default.fileExists(atPath: fleet.auditPath) ? try records() : 0
      let bench = URL(fileURLWithPath: SixtyBinary.path).deletingLastPathComponent().appendingPathComponent(
        "sixty-bench"
      ).path
      let load = try runProgram(
        bench,
        [
          "push", fleet.endpoint, LocalFleet.accessKeyID, LocalFleet.secret, fleet.hosts[0].instanceID, "ops",
          "10000", "50",
        ])
      #expect(load.status == 0, "\(load.stdout)\(load.stderr)")
      #expect(load.stdout.contains("10000 in "), "\(load.stdout)")
      // Every push is in the audit log, and the hash chain verifies.
      #expect(try records() - before == 10_000)
    }
  }
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func aHangingCommandIsKilledAtItsTimeoutOnTheHostToo() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let playbook = try write(
        """
        name: hang
        hosts: all
        tasks:
          - name: stuck
            command: [sleep, "317"]
            timeout: 2s
        """, fleet.directory + "/hang.yml")
      let started = Date()
      let result = try SixtyBinary.run(
        ["run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint],
        environment: fleet.environment)
      #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
      #expect(result.stdout.contains("timed out"), "\(result.stdout)")
      // The killed task's own line comes before its host's end line.
      let lines = result.stdout.split(separator: "\n").map(String.init)
      let task = lines.firstIndex { $0.hasPrefix("web-1 | stuck | exit") }
      let end = lines.firstIndex { $0 == "-- end web-1 timed out" }
      #expect(task != nil && end != nil && task! < end!, "\(result.stdout)")
      #expect(Date().timeIntervalSince(started) < 20)
      // The remote process is gone too, shortly after.
      func remaining() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
          guard Int(entry) != nil, let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
          else {
            return nil
          }
          let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
          return line.hasPrefix("sleep 317") ? entry : nil
        }
      }
      let deadline = Date().addingTimeInterval(8)
      while !remaining().isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
      #expect(remaining().isEmpty, "the remote 'sleep 317' outlived its task")
    }
  }
  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func sigtermMidTaskStopsAtOnceWipesTheKeyAndRaisesTheFileLimit() throws {
    try withLocalFleet(LocalFleet(count: 2)) { fleet in
      let playbook = try write(
        "name: long\nhosts: all\ntasks:\n  - name: wait\n    command: [sleep, \"318\"]\n",
        fleet.directory + "/long.yml")
      let keyDir = fleet.directory + "/keys"
      try FileManager.default.createDirectory(atPath: keyDir, withIntermediateDirectories: true)
      var env = fleet.environment
      env["SIXTY_KEY_DIR"] = keyDir
      let reportPath = fleet.directory + "/report.json"
      // Started with a low soft limit on open files, as many shells have.
      let run = try LocalProcess(
        "/bin/sh",
        [
          "-c", "ulimit -Sn 256; exec \"$0\" \"$@\"", SixtyBinary.path, "run", playbook, "-i",
          try fleet.writeInventory(),
          "--endpoint", fleet.endpoint, "--report", reportPath, "--no-progress",
        ], environment: env, logPath: fleet.directory + "/run.log")
      defer { run.stop() }
      var deadline = Date().addingTimeInterval(20)
      func sleeping() -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).contains { entry in
          guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else {
            return false
          }
          return String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).hasPrefix("sleep 318")
        }
      }
      while !sleeping() && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
      let limits = (try? String(contentsOfFile: "/proc/\(run.pid)/limits", encoding: .utf8)) ?? ""
      let files = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
      let soft =
        Int(files.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first ?? "") ?? 0
      #expect(soft > 256, "the soft limit on open files was not raised: \(files)")
      let signalled = Date()
      kill(run.pid, SIGTERM)
      deadline = Date().addingTimeInterval(15)
      while run.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
      #expect(!run.isRunning)
      #expect(Date().timeIntervalSince(signalled) < 10, "SIGTERM kills running tasks")
      #expect(run.exitStatus == 4, "\(run.log)")
      #expect(
        try FileManager.default.contentsOfDirectory(atPath: keyDir).isEmpty, "the key directory is wiped")
      let report = try String(contentsOfFile: reportPath, encoding: .utf8)
      #expect(report.contains("\"outcome\":\"interrupted\""), "\(report.prefix(400))")
      let history = try SixtyBinary.run(["runs", "list", "--format", "json"], environment: fleet.environment)
      #expect(history.stdout.contains("\"status\":\"aborted\""), "\(history.stdout)")
    }
  }

  @Test(.enabled(if: LocalFleet.canRun, "needs root and sshd"))
  func hostileVariableValuesAreDataNeverCommandsOrOptions() throws {
    try withLocalFleet(LocalFleet(count: 1)) { fleet in
      let marker = fleet.directory + "/pwned"
      let hostile =
        "x $(touch \(marker)-1) `touch \(marker)-2`; touch \(marker)-3 && touch \(marker)-4 | touch \(marker)-5\n-oProxyCommand=touch \(marker)-6 'q\" \\"
      let playbook = try write(
        """
        name: hostile
        hosts: all
        tasks:
          - name: argv
            command: [printf, "%s|", "{{ v }}", "-oProxyCommand=touch \(marker)-7"]
          - name: env
            command: [printenv, HOSTILE]
            env: {HOSTILE: "{{ v }}"}
          - name: cwd
            command: ["true"]
            cwd: "/tmp/{{ w }}"
        """, fleet.directory + "/hostile.yml")
      let result = try SixtyBinary.run(
        [
          "run", playbook, "-i", try fleet.writeInventory(), "--endpoint", fleet.endpoint, "-e",
          "v=\(hostile)",
          "-e", "w=$(touch \(marker)-8)", "--report", fleet.directory + "/report.json",
        ], environment: fleet.environment)
      // The cwd does not exist, so that task fails; the others print the value as it is.
      #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
      let report = try #require(
        try JSONSerialization.jsonObject(
          with: Data(contentsOf: URL(fileURLWithPath: fleet.directory + "/report.json")))
          as? [String: Any])
      let plays = try #require(report["plays"] as? [[String: Any]])
      let hosts = try #require(plays.first?["hosts"] as? [String: [String: Any]])
      let tasks = try #require(hosts["web-1"]?["tasks"] as? [[String: Any]])
      #expect(tasks[0]["stdout"] as? String == "\(hostile)|-oProxyCommand=touch \(marker)-7|")
      #expect(tasks[1]["stdout"] as? String == hostile + "\n")
      #expect((tasks[2]["stderr"] as? String ?? "").contains("/tmp/$(touch \(marker)-8)"), "\(tasks[2])")
      // Nothing was executed, here or on the host (the same machine).
      for n in 1...8 {
        #expect(!FileManager.default.fileExists(atPath: "\(marker)-\(n)"), "\(marker)-\(n) exists")
      }
    }
  }
}
