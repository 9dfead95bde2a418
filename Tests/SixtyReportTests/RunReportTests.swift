import Foundation
import SixtyHistory
import SixtyReport
import Testing

@Suite struct RunReportTests {
  static let start = Date(timeIntervalSince1970: 1_795_000_000)

  static func host(_ name: String, status: HostStatus = .ok, output: String = "fine\n") -> HostRecord {
    let push = start.addingTimeInterval(1)
    return HostRecord(
      play: "patch", host: name, address: "127.0.0.1:2201", user: "ops", status: status,
      message: status == .unreachable ? "cannot connect" : nil,
      pushes: status == .notStarted ? [] : [push],
      authenticatedAt: status == .ok || status == .failed ? push.addingTimeInterval(0.25) : nil,
      pushToAuthMilliseconds: status == .ok || status == .failed ? 250 : nil, startedAt: push,
      finishedAt: push.addingTimeInterval(2), reconnects: 0,
      tasks: status == .ok || status == .failed
        ? [
          TaskRecord(
            name: "check", status: status == .failed ? .failed : .ok,
            reason: status == .failed ? "exit status 3" : nil,
            exitStatus: status == .failed ? 3 : 0, attempts: 1, startedAt: push.addingTimeInterval(0.3),
            finishedAt: push.addingTimeInterval(1), stdoutTail: output,
            stderrTail: status == .failed ? "bad\n" : ""),
          TaskRecord(name: "restart", status: status == .failed ? .skipped : .ok, reason: nil),
        ] : [])
  }

  static func report(_ hosts: [HostRecord]) -> RunReport {
    RunReport(
      runID: 3, playbook: "playbooks/patch.yml", started: start, finished: start.addingTimeInterval(4),
      status: .failed, exitCode: 1, message: nil, policy: "/etc/sixty/policy.yml", trigger: .manual,
      startedBy: "ops@box", keyFingerprint: "SHA256:abc", outputIsTail: false,
      plays: [RunReport.Play(name: "patch", outcome: .completed, keyTTL: 60, concurrency: 10, hosts: hosts)])
  }

  @Test func jsonCarriesTheRunThePlaysAndEveryHost() throws {
    let report = Self.report([
      Self.host("web-1"), Self.host("web-2", status: .failed), Self.host("web-3", status: .unreachable),
    ])
    let object = try #require(try JSONSerialization.jsonObject(with: Data(report.json())) as? [String: Any])
    #expect(object["run_id"] as? Int == 3)
    #expect(object["status"] as? String == "failed" && object["exit_code"] as? Int == 1)
    #expect(object["key_fingerprint"] as? String == "SHA256:abc" && object["output"] as? String == "complete")
    let play = try #require((object["plays"] as? [[String: Any]])?.first)
    #expect(play["key_ttl_seconds"] as? Double == 60 && play["concurrency"] as? Int == 10)
    let hosts = try #require(play["hosts"] as? [String: [String: Any]])
    #expect(hosts["web-1"]?["push_to_auth_ms"] as? Int == 250)
    let tasks = try #require(hosts["web-2"]?["tasks"] as? [[String: Any]])
    #expect(tasks[0]["status"] as? String == "failed" && tasks[0]["exit_status"] as? Int == 3)
    #expect(tasks[0]["stderr"] as? String == "bad\n")
    #expect(tasks[1]["status"] as? String == "skipped" && tasks[1]["stdout"] == nil)
    #expect(
      hosts["web-3"]?["authenticated"] == nil && hosts["web-3"]?["message"] as? String == "cannot connect")
  }

  @Test func junitHasACasePerTaskAndAConnectCaseForHostsThatNeverRan() {
    let xml = Self.report([
      Self.host("web-1"), Self.host("web-2", status: .failed), Self.host("web-3", status: .unreachable),
      Self.host("web-4", status: .notStarted),
    ]).junit()
    #expect(xml.contains("<testsuite name=\"patch\" tests=\"6\" failures=\"2\" skipped=\"2\">"), "\(xml)")
    #expect(
      xml.contains("<testcase classname=\"web-3\" name=\"connect\"><failure message=\"cannot connect\"/>"))
    #expect(xml.contains("<testcase classname=\"web-2\" name=\"check\"><failure message=\"exit status 3\"/>"))
  }

  @Test func htmlIsSelfContainedAndItsDataCannotCloseItsScript() throws {
    let hostile = "</script><script>alert(1)</script><!--"
    let html = Self.report([Self.host("web-<1>", output: hostile)]).html()
    // Nothing to fetch when viewed.
    for reference in ["src=", "href=", "url(", "@import", "fetch(", "XMLHttpRequest", "http://", "https://"] {
      #expect(!html.contains(reference), "\(reference)")
    }
    // The only closing script tags are the three of the page itself.
    #expect(html.components(separatedBy: "</script>").count == 4)
    #expect(!html.contains("<!--"))
    // The embedded data is the JSON report, whole.
    let start = try #require(html.range(of: "<script id=\"sixty-report\" type=\"application/json\">"))
      .upperBound
    let end = try #require(html[start...].range(of: "</script>")).lowerBound
    let embedded = try #require(
      try JSONSerialization.jsonObject(with: Data(html[start..<end].utf8)) as? [String: Any])
    let reference = try #require(
      try JSONSerialization.jsonObject(
        with: Data(Self.report([Self.host("web-<1>", output: hostile)]).json()))
        as? [String: Any])
    #expect(NSDictionary(dictionary: embedded).isEqual(to: reference))
  }

  @Test func aRunIsReadBackFromTheHistory() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-report-\(UUID())")
      .path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let history = try History(path: directory + "/history.sqlite")
    let id = try history.begin(
      NewRun(
        startedAt: Self.start, playbook: "playbooks/patch.yml", playbookSHA256: "00", inventory: nil,
        policy: nil))
    try history.setKeyFingerprint(runID: id, "SHA256:abc")
    try history.record(
      runID: id,
      play: PlayRecord(
        position: 0, name: "patch", outcome: .aborted, reason: "2 hosts failed", keyTTL: 45, concurrency: 5))
    try history.record(runID: id, hosts: [Self.host("web-1"), Self.host("web-2", status: .failed)])
    try history.finish(id: id, status: .aborted, exitCode: 4, message: "play 'patch' aborted: 2 hosts failed")
    let report = try #require(try RunReport.load(from: history, runID: id))
    #expect(report.runID == id && report.status == .aborted && report.exitCode == 4)
    #expect(report.keyFingerprint == "SHA256:abc" && report.outputIsTail)
    #expect(report.plays.count == 1)
    #expect(report.plays[0].outcome == .aborted && report.plays[0].reason == "2 hosts failed")
    #expect(report.plays[0].keyTTL == 45 && report.plays[0].concurrency == 5)
    #expect(report.plays[0].hosts.map(\.host) == ["web-1", "web-2"])
    #expect(report.plays[0].hosts[1].tasks[0].stderrTail == "bad\n")
    #expect(try RunReport.load(from: history, runID: id + 1) == nil)

    // A run recorded before plays were: its play is known by its hosts alone.
    let older = try history.begin(
      NewRun(startedAt: Self.start, playbook: "old.yml", playbookSHA256: "00", inventory: nil, policy: nil))
    try history.record(runID: older, hosts: [Self.host("web-1")])
    let old = try #require(try RunReport.load(from: history, runID: older))
    #expect(old.plays.map(\.name) == ["patch"] && old.plays[0].outcome == .unknown)
  }
}
