import Foundation
import Logging
import SixtyCore
import SixtyHistory
import Testing

@testable import SixtyCalendar
@testable import SixtyJobs

/// A jobs file is checked as its runs will be: each job's playbook and inventory must exist and
/// validate, and a rare schedule is scheduled, not dropped.
@Suite struct JobsCheckTests {
  let directory = NSTemporaryDirectory() + "sixty-jobs-check-\(UUID().uuidString)"

  func write(_ files: [String: String]) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for (name, text) in files {
      try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
    }
  }

  func messages(_ diagnostics: [Diagnostic]) -> [String] {
    diagnostics.map { $0.description.replacingOccurrences(of: directory + "/", with: "") }
  }

  let inventory = """
    hosts:
      web-1: {address: 10.0.0.1, instance_id: i-00000000000000001, tags: {role: web}}
    groups:
      web: {match: role=web}
    """

  @Test func aValidJobsFileLoads() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try write([
      "jobs.yml": "jobs:\n  a:\n    playbook: p.yml\n    inventory: i.yml\n    schedule: \"0 2 * * *\"\n",
      "p.yml": "hosts: web\ntasks:\n  - {name: t, shell: x}\n",
      "i.yml": inventory,
    ])
    let (jobs, diagnostics) = JobsCheck.load(
      path: directory + "/jobs.yml", now: Date(timeIntervalSince1970: 0))
    #expect(messages(diagnostics) == [])
    #expect(jobs?.map(\.name) == ["a"])
  }

  @Test func missingFilesAreErrorsAtTheirKeys() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try write([
      "jobs.yml":
        "jobs:\n  a:\n    playbook: nope.yml\n    inventory: gone.yml\n    schedule: \"0 2 * * *\"\n"
    ])
    let (jobs, diagnostics) = JobsCheck.load(
      path: directory + "/jobs.yml", now: Date(timeIntervalSince1970: 0))
    #expect(jobs == nil)
    #expect(
      messages(diagnostics)
        == [
          "jobs.yml:3:15: error: the playbook of job 'a' does not exist (looked for nope.yml); expected a readable file (a relative path is relative to the jobs file).",
          "jobs.yml:4:16: error: the inventory of job 'a' does not exist (looked for gone.yml); expected a readable file (a relative path is relative to the jobs file).",
        ])
  }

  @Test func aPlaybookThatDoesNotValidateIsAnErrorWithItsOwnDiagnostics() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try write([
      "jobs.yml": """
      jobs:
        a:
          playbook: p.yml
          inventory: i.yml
          schedule: "0 2 * * *"
        b:
          playbook: p.yml
          inventory: i.yml
          schedule: "0 3 * * *"

      """,
      "p.yml": "hosts: webs\ntasks:\n  - {name: t, shell: \"{{ nope }}\"}\n",
      "i.yml": inventory,
    ])
    let (jobs, diagnostics) = JobsCheck.load(
      path: directory + "/jobs.yml", now: Date(timeIntervalSince1970: 0))
    #expect(jobs == nil)
    // Both jobs name the playbook; its own error is reported once, after the first.
    #expect(
      messages(diagnostics) == [
        "jobs.yml:3:15: error: the playbook of job 'a' does not validate with the inventory i.yml (1 error, shown at its own position); expected `sixty validate` to pass.",
        "p.yml:1:8: error: the play 'play 1' targets 'webs', which is neither a group nor a host of i.yml; did you mean 'web'?",
        "jobs.yml:7:15: error: the playbook of job 'b' does not validate with the inventory i.yml (1 error, shown at its own position); expected `sixty validate` to pass.",
      ])
  }

  /// On SIGHUP (here `reload()`), a jobs file whose job cannot run is refused and the previous
  /// jobs keep firing; once the job's playbook exists, the same file is taken.
  @Test func aReloadWithAJobThatCannotRunKeepsThePreviousJobs() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try write([
      "jobs.yml": "jobs:\n  new:\n    playbook: p.yml\n    inventory: i.yml\n    schedule: rate(1 minute)\n",
      "i.yml": inventory,
    ])
    let history = try History(path: directory + "/history.sqlite")
    let old = Job(
      name: "old", playbook: directory + "/old.yml", inventory: directory + "/i.yml", policy: nil,
      schedule: .rate(seconds: 60, text: "rate(1 minute)"), timeZone: TimeZone(identifier: "UTC")!,
      windowDuration: nil, windowCutoff: .seconds(0), overlap: .skip, catchUp: .none, enabled: true,
      notifications: [])
    let minute = { (n: Double) in Date(timeIntervalSince1970: 60_000 + n * 60) }
    let clock = ManualClock(minute(0).addingTimeInterval(1))
    let launcher = FakeLauncher()
    let logger = Logger(label: "test")
    let daemon = JobsDaemon(
      jobsPath: directory + "/jobs.yml", jobs: [old], history: history, logDirectory: directory + "/logs",
      launcher: launcher,
      notifier: Notifier(history: history, logger: logger, version: "test", encodeRun: { _, _, _ in }),
      clock: clock, logger: logger, trapsHangup: false)
    let service = Task { try await daemon.run() }
    func settle(until condition: () -> Bool = { true }) async {
      for _ in 0..<100_000 {
        await Task.yield()
        if condition() && clock.sleeping > 0 { return }
      }
    }
    await settle()
    // p.yml does not exist: the reload is refused, and 'old' fires.
    daemon.reload()
    await settle()
    clock.advance(to: minute(1))
    await settle { launcher.launched.count == 1 }
    #expect(launcher.launched.map(\.job) == ["old"])
    launcher.end(0, status: 0)
    // With the playbook in place the file is taken: 'new' replaces 'old'.
    try write(["p.yml": "hosts: web\ntasks:\n  - {name: t, shell: x}\n"])
    daemon.reload()
    await settle()
    clock.advance(to: minute(2))
    await settle { launcher.launched.count == 2 }
    #expect(launcher.launched.map(\.job) == ["old", "new"])
    launcher.end(1, status: 0)
    await settle()
    service.cancel()
    try await service.value
  }

  @Test func aRareScheduleIsScheduledAndFires() {
    let job = Job(
      name: "leap", playbook: "/p.yml", inventory: "/i.yml", policy: nil,
      schedule: try! Schedule(parsing: "0 0 29 2 *"), timeZone: TimeZone(identifier: "UTC")!,
      windowDuration: nil, windowCutoff: .seconds(0), overlap: .skip, catchUp: .none, enabled: true,
      notifications: [])
    let start = ISO8601DateFormatter().date(from: "2026-12-01T00:00:00Z")!
    let leapDay = ISO8601DateFormatter().date(from: "2028-02-29T00:00:00Z")!
    var machine = JobsMachine(jobs: [job])
    _ = machine.handle(.start(lastFires: [:]), now: start)
    #expect(machine.nextFire["leap"] == leapDay)
    #expect(machine.sleep(now: start, maxSleep: 30) == 30)
    let before = machine.handle(.wake, now: leapDay.addingTimeInterval(-1))
    #expect(!before.contains { if case .launch = $0 { true } else { false } })
    let actions = machine.handle(.wake, now: leapDay)
    let launched = actions.compactMap { if case .launch(let launch) = $0 { launch.scheduled } else { nil } }
    #expect(launched == [leapDay])
    #expect(machine.nextFire["leap"] == ISO8601DateFormatter().date(from: "2032-02-29T00:00:00Z"))
  }
}
