import Foundation
import SixtyHistory
import SixtyReport
import Testing

/// The HTML report, drawn by headless Chromium: from a real run against the local fleet (written
/// by `sixty run --html` and again from the history by `sixty runs report`), and from a made-up
/// 2,000-host run with hostile names and output.
@Suite(.serialized) struct HTMLReportEndToEndTests {
  static var canRender: Bool { Chromium.path != nil || ProcessInfo.processInfo.environment["CI"] != nil }

  @Test(.enabled(if: LocalFleet.canRun && canRender, "needs root, sshd and chromium"))
  func aRealRunsReportShowsEveryHostItsMarksAndItsFailures() throws {
    try withLocalFleet(LocalFleet(count: 4)) { fleet in
      let playbook = fleet.directory + "/patch.yml"
      try """
      name: patch
      hosts: all
      tasks:
        - name: prepare
          shell: 'echo preparing {{ host.name }}; sleep 0.3'
        - name: upgrade
          shell: 'if [ "{{ host.name }}" = web-3 ]; then echo "E: dpkg was interrupted on {{ host.name }}" >&2; exit 100; fi; echo upgraded'
        - name: restart
          shell: 'echo restarted'
      """.write(toFile: playbook, atomically: true, encoding: .utf8)
      // One more host that cannot be reached: the broker does not know its instance.
      var inventory = try String(contentsOfFile: try fleet.writeInventory(), encoding: .utf8)
      inventory +=
        "  web-9:\n    address: 127.0.0.1\n    port: \(LocalProcess.freePort())\n    user: \(fleet.user)\n    instance_id: i-00000000000000ff\n    tags: {role: web}\n"
      let inventoryPath = fleet.directory + "/inventory-9.yml"
      try inventory.write(toFile: inventoryPath, atomically: true, encoding: .utf8)

      let live = fleet.directory + "/live.html"
      let run = try SixtyBinary.run(
        [
          "run", playbook, "-i", inventoryPath, "--endpoint", fleet.endpoint, "--html", live, "--report",
          fleet.directory + "/live.json",
        ], environment: fleet.environment)
      #expect(run.status == 1, "\(run.stdout)\(run.stderr)")
      #expect(run.stdout.contains("html: \(live)"), "\(run.stdout)")

      let stored = fleet.directory + "/stored.html"
      let report = try SixtyBinary.run(
        [
          "runs", "report", "1", "--html", stored, "--junit", fleet.directory + "/stored.xml", "--json",
          fleet.directory + "/stored.json",
        ], environment: fleet.environment)
      #expect(report.status == 0, "\(report.stdout)\(report.stderr)")
      let missing = try SixtyBinary.run(
        ["runs", "report", "7", "--html", stored], environment: fleet.environment)
      #expect(missing.status == 2)
      #expect(missing.stderr.contains("there is no run 7 in \(fleet.historyPath)"), "\(missing.stderr)")

      let expected = ["web-1": "ok", "web-2": "ok", "web-3": "failed", "web-4": "ok", "web-9": "unreachable"]
      for file in [live, stored] {
        let dom = try Chromium.dom(file)
        let rows = ReportRow.parse(dom)
        #expect(rows.count == 5, "\(file): one row per host, got \(rows.map(\.host))")
        #expect(Dictionary(uniqueKeysWithValues: rows.map { ($0.host, $0.status) }) == expected, "\(file)")
        let counted = dom.contains("data-hosts=\"5\"")
        #expect(counted, "\(file): the page counts 5 hosts")
        for row in rows {
          #expect(row.classes.contains("s-\(expected[row.host]!.replacingOccurrences(of: " ", with: ""))"))
          #expect(row.pushes.count == 1, "\(row.host): \(row.pushes)")
          if row.host == "web-9" {
            #expect(row.auth == nil && row.tasks.isEmpty, "an unreachable host has no authentication mark")
            continue
          }
          // Every push mark comes before its authentication mark, inside the key's shaded window.
          let auth = try #require(row.auth, "\(row.host) has an authentication mark")
          let push = try #require(row.pushes.first)
          #expect(push.t < auth.t, "\(row.host): pushed at \(push.t) ms, authenticated at \(auth.t) ms")
          #expect(push.left <= auth.left, "\(row.host): \(push.left)% then \(auth.left)%")
          let window = try #require(row.windows.first)
          #expect(abs(window.left - push.left) < 0.01 && auth.left <= window.left + window.width)
          // Tasks start after authentication, one bar per task that ran.
          #expect(row.tasks.count == (row.host == "web-3" ? 2 : 3), "\(row.host): \(row.tasks)")
          #expect(row.tasks.allSatisfy { $0.left >= auth.left - 0.01 })
          #expect(row.tasks.map(\.status) == (row.host == "web-3" ? ["ok", "failed"] : ["ok", "ok", "ok"]))
        }
        #expect(dom.contains("<b>4/4</b><span>authenticated inside the key window</span>"), "\(file)")
        // The failures: web-3's task with its stderr, and web-9 unreachable.
        let failures = try #require(dom.range(of: "id=\"failures\"")).upperBound
        let section = dom[failures...]
        #expect(section.contains("<b>upgrade</b>"))
        #expect(section.contains("E: dpkg was interrupted on web-3"))
        #expect(section.contains(">web-3</button>") && section.contains(">web-9</button>"))
        #expect(section.contains("host unreachable"))
      }
      let liveDOM = try Chromium.dom(live)
      #expect(liveDOM.contains("as captured"))
      #expect(try Chromium.dom(stored).contains("the last 4 KB of each stream, from the history"))

      // Filters and output on demand, chosen by the address's fragment as a link would.
      let focused = try Chromium.dom(stored, fragment: "#status=failed&host=web-3")
      #expect(focused.contains("data-shown=\"1\""), "only the failed host is shown")
      #expect(focused.contains("<aside id=\"detail\" aria-live=\"polite\" data-host=\"web-3\">"))
      #expect(focused.contains("<pre class=\"err\">E: dpkg was interrupted on web-3\n</pre>"))
      #expect(focused.contains("<pre class=\"out\">preparing web-3\n</pre>"))

      // The screenshot.
      let png = fleet.directory + "/report.png"
      try Chromium.screenshot(live, to: png)
      let data = try Data(contentsOf: URL(fileURLWithPath: png))
      let size = try #require(Chromium.pngSize(data))
      #expect(size.width == 1400 && size.height == 900)
      #expect(data.count > 20_000, "a drawn page, not a blank one (\(data.count) bytes)")
      if let keep = ProcessInfo.processInfo.environment["SIXTY_REPORT_SCREENSHOT"] {
        try? FileManager.default.removeItem(atPath: keep)
        try FileManager.default.copyItem(atPath: png, toPath: keep)
      }

      // The history's JSON is the live JSON's data, with output cut to its tail.
      let liveJSON = try #require(
        try JSONSerialization.jsonObject(
          with: Data(contentsOf: URL(fileURLWithPath: fleet.directory + "/live.json")))
          as? [String: Any])
      let storedJSON = try #require(
        try JSONSerialization.jsonObject(
          with: Data(contentsOf: URL(fileURLWithPath: fleet.directory + "/stored.json"))) as? [String: Any])
      for key in ["run_id", "playbook", "status", "exit_code", "key_fingerprint"] {
        #expect("\(liveJSON[key] ?? "-")" == "\(storedJSON[key] ?? "-")", "\(key)")
      }
      #expect(liveJSON["output"] as? String == "complete" && storedJSON["output"] as? String == "tail")
      let livePlay = try #require((liveJSON["plays"] as? [[String: Any]])?.first)
      let storedPlay = try #require((storedJSON["plays"] as? [[String: Any]])?.first)
      #expect(livePlay["key_ttl_seconds"] as? Double == 60 && storedPlay["key_ttl_seconds"] as? Double == 60)
      #expect(storedPlay["outcome"] as? String == "completed")
      let liveHosts = try #require(livePlay["hosts"] as? [String: [String: Any]])
      let storedHosts = try #require(storedPlay["hosts"] as? [String: [String: Any]])
      for (name, host) in liveHosts {
        for key in ["status", "pushes", "authenticated", "push_to_auth_ms", "address"] {
          #expect("\(host[key] ?? "-")" == "\(storedHosts[name]?[key] ?? "-")", "\(name).\(key)")
        }
      }
      let junit = try String(contentsOfFile: fleet.directory + "/stored.xml", encoding: .utf8)
      #expect(junit.contains("tests=\"13\" failures=\"2\" skipped=\"1\""), "\(junit)")
    }
  }

  /// A made-up run of 2,000 hosts: every row is drawn, clusters count their hosts, and names and
  /// output that look like markup stay text.
  @Test(.enabled(if: canRender, "needs chromium"))
  func twoThousandHostsAndHostileTextRender() throws {
    let start = Date(timeIntervalSince1970: 1_795_000_000)
    var hosts: [HostRecord] = []
    for index in 0..<2000 {
      let push = start.addingTimeInterval(Double(index / 20) * 1.5)
      let auth = push.addingTimeInterval(0.2 + Double(index % 7) / 100)
      var tasks: [TaskRecord] = []
      var clock = auth.addingTimeInterval(0.05)
      for (position, name) in ["check", "upgrade", "restart", "verify", "report"].enumerated() {
        var status: TaskStatus = .ok
        var stderr = ""
        if index % 7 == 3 && position == 1 {
          status = .failed
          stderr = "E: Could not get lock /var/lib/dpkg/lock-frontend\n"
        }
        if index % 7 == 3 && position > 1 { status = .skipped }
        let ran = status != .skipped
        tasks.append(
          TaskRecord(
            name: name, status: status, reason: status == .failed ? "exit status 100" : nil,
            exitStatus: ran ? (status == .ok ? 0 : 100) : nil, attempts: ran ? 1 : 0,
            startedAt: ran ? clock : nil,
            finishedAt: ran ? clock.addingTimeInterval(0.4) : nil, stdoutTail: ran ? "done \(index)\n" : nil,
            stderrTail: ran ? stderr : nil))
        if ran { clock = clock.addingTimeInterval(0.45) }
      }
      let unreachable = index % 100 == 99
      hosts.append(
        HostRecord(
          play: "fleet",
          host: index == 5 ? "<img src=x onerror=\"document.title='owned'\">" : "host-\(index)",
          address: "10.0.\(index / 250).\(index % 250):22", user: "ops",
          status: unreachable ? .unreachable : index % 7 == 3 ? .failed : .ok,
          message: unreachable ? "cannot connect: Connection timed out" : nil, pushes: [push],
          authenticatedAt: unreachable ? nil : auth, pushToAuthMilliseconds: unreachable ? nil : 200,
          startedAt: push, finishedAt: clock, reconnects: 0,
          tasks: unreachable
            ? []
            : index == 10
              ? [
                TaskRecord(
                  name: "check", status: .ok, exitStatus: 0, attempts: 1, startedAt: auth,
                  finishedAt: auth.addingTimeInterval(0.1),
                  stdoutTail: "</script><script>document.title='owned'</script>\n", stderrTail: "")
              ] : tasks))
    }
    let report = RunReport(
      runID: 42, playbook: "playbooks/<b>patch</b>.yml", started: start,
      finished: start.addingTimeInterval(160),
      status: .failed, exitCode: 1, outputIsTail: false,
      plays: [RunReport.Play(name: "fleet", outcome: .completed, keyTTL: 60, concurrency: 20, hosts: hosts)])
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-report-\(UUID())")
      .path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let file = directory + "/big.html"
    try report.html().write(toFile: file, atomically: true, encoding: .utf8)
    let began = Date()
    let dom = try Chromium.dom(file)
    let rows = ReportRow.parse(dom)
    #expect(rows.count == 2000)
    #expect(rows.filter { $0.status == "failed" }.count == hosts.filter { $0.status == .failed }.count)
    #expect(rows.filter { $0.status == "unreachable" }.count == 20)
    #expect(rows.allSatisfy { row in row.auth.map { a in row.pushes.allSatisfy { $0.t < a.t } } ?? true })
    // The same failure on many hosts is one entry that counts them.
    // (The DOM is 2 MB: checks are made on it first, so a failure does not print it whole.)
    let failed = hosts.filter { $0.tasks.contains { $0.status == .failed } }.count
    let cluster = dom.contains("data-hosts=\"\(failed)\"><b>upgrade</b> — exit status 100")
    #expect(cluster, "one cluster of the \(failed) hosts whose upgrade failed")
    let unreachableCluster = dom.contains("data-hosts=\"20\"><b>host unreachable</b>")
    #expect(unreachableCluster, "one cluster of the 20 unreachable hosts")
    // Markup in names and output is text: no element was made from it and the title is unchanged.
    let injected = dom.contains("<img src=\"x\"") || dom.contains("owned</title>")
    #expect(!injected, "no element made from a host name or output")
    let title = dom.contains("<title>Sixty run 42: playbooks/&lt;b&gt;patch&lt;/b&gt;.yml (failed)</title>")
    #expect(title)
    let rendered = dom.firstRange(of: #/data-render-ms="(\d+)"/#).map { String(dom[$0]) } ?? "?"
    print(
      "2,000-host report: \(report.html().utf8.count / 1024) KB, script \(rendered), chromium load and dump \(String(format: "%.1f", Date().timeIntervalSince(began))) s"
    )
  }
}
