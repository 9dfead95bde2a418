import Foundation
import SixtyHistory
import SixtyReport
import Testing

@Suite struct RunDocumentTests {
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sixty-document-\(UUID())")
    .path

  /// A finished run of two hosts, one failed, with a play and a notification.
  func recorded() throws -> (History, Int64) {
    let history = try History(path: directory + "/history.sqlite")
    let id = try history.begin(
      NewRun(
        startedAt: RunReportTests.start, playbook: "playbooks/patch.yml",
        playbookSHA256: "0123456789abcdef0123",
        inventory: "/srv/inventory.yml", policy: nil, extraVarNames: ["version"], hostsTotal: 2))
    try history.record(
      runID: id,
      play: PlayRecord(position: 0, name: "patch", outcome: .completed, keyTTL: 60, concurrency: 10))
    try history.record(
      runID: id, hosts: [RunReportTests.host("web-1"), RunReportTests.host("web-2", status: .failed)])
    try history.finish(
      id: id, status: .failed, exitCode: 1, message: nil, at: RunReportTests.start.addingTimeInterval(4))
    try history.recordNotification(
      NotificationRecord(
        runID: id, job: nil, kind: .webhook, target: "https://hooks.example.com/…", outcome: .sent,
        attempts: 1,
        error: nil, at: RunReportTests.start.addingTimeInterval(5)))
    return (history, id)
  }

  @Test func theHistoryDocumentIsTheReportWithTheHistorysFactsAdded() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (history, id) = try recorded()
    let detail = try RunDetail.load(from: history, id: id, host: nil)
    let document = try #require(
      try JSONSerialization.jsonObject(with: Data(detail.json())) as? [String: Any])
    let loaded = try #require(try RunReport.load(from: history, runID: id))
    let report = try #require(try JSONSerialization.jsonObject(with: Data(loaded.json())) as? [String: Any])
    // Every key of the report, with the same value.
    for (key, value) in report {
      #expect(
        document[key].map { NSDictionary(dictionary: [key: $0]).isEqual(to: [key: value]) } == true, "\(key)")
    }
    // And the history's own.
    #expect(document["id"] as? Int == Int(id) && document["duration_s"] as? Double == 4)
    #expect(document["hosts_total"] as? Int == 2 && document["hosts_failed"] as? Int == 1)
    #expect(document["extra_var_names"] as? [String] == ["version"])
    let hosts = try #require(document["hosts"] as? [[String: Any]])
    #expect(hosts.map { $0["host"] as? String } == ["web-1", "web-2"])
    #expect(hosts.map { $0["play"] as? String } == ["patch", "patch"])
    let task = try #require((hosts[1]["tasks"] as? [[String: Any]])?.first)
    #expect(task["status"] as? String == "failed" && task["stderr_tail"] as? String == "bad\n")
    #expect(task["finished"] as? String == task["ended"] as? String)
    let notifications = try #require(document["notifications"] as? [[String: Any]])
    #expect(
      notifications.first?["kind"] as? String == "webhook"
        && notifications.first?["outcome"] as? String == "sent")
  }

  @Test func listingAndDetailText() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (history, id) = try recorded()
    let listing = try RunListing.load(from: history, job: nil, since: nil, limit: 10)
    let lines = listing.text().split(separator: "\n")
    #expect(lines.count == 2)
    #expect(lines[0].hasPrefix("ID  STARTED"))
    #expect(lines[1].contains(" 4.0s ") && lines[1].contains(" failed ") && lines[1].contains(" 1/1/2 "))
    let list = try #require(try JSONSerialization.jsonObject(with: Data(listing.json())) as? [[String: Any]])
    #expect(list.count == 1 && list[0]["id"] as? Int == Int(id) && list[0]["hosts"] == nil)
    let none = try RunListing.load(from: history, job: "nightly", since: nil, limit: 10)
    #expect(none.text() == "no runs recorded for job 'nightly' in \(history.path)\n")

    let text = try RunDetail.load(from: history, id: id, host: nil).text()
    #expect(text.hasPrefix("run \(id): failed (exit 1)\n"))
    #expect(text.contains("  notified   webhook https://hooks.example.com/…: sent\n"))
    #expect(text.contains("\nweb-2 | check | failed (exit 3): exit status 3\n  | fine\n  ! bad\n"))
    #expect(!text.contains("web-1 | check"))
    #expect(try RunDetail.load(from: history, id: id, host: "web-1").text().contains("web-1 | check | ok"))
    #expect(throws: HistoryError.self) { try RunDetail.load(from: history, id: id, host: "web-9") }
    #expect(throws: HistoryError.self) { try RunDetail.load(from: history, id: id + 1, host: nil) }
  }

  @Test func durationsAndTables() {
    #expect(RunText.duration(4.25) == "4.2s" || RunText.duration(4.25) == "4.3s")
    #expect(RunText.duration(187) == "3m07s")
    #expect(RunText.duration(7500) == "2h05m")
    #expect(RunText.table([["A", "BB", "C"], ["ccc", "", "d"]]) == "A    BB  C\nccc      d\n")
    #expect(RunText.localTime(RunReportTests.start) == "2026-11-18T11:06:40Z")
  }
}
