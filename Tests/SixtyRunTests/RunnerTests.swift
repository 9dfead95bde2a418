import Foundation
import SixtyCore
import SixtyHistory
import SixtyPlanning
import SixtyScheduler
import Testing

@testable import SixtyRun

/// A console that keeps every event, for tests.
final class RecordingConsole: RunConsole {
  let lock = NSLock()
  // Only touched under `lock`.
  nonisolated(unsafe) var events: [RunEvent] = []
  func handle(_ event: RunEvent) { lock.withLock { events.append(event) } }
  var plans: [String] {
    lock.withLock { events.compactMap { if case .plan(let text) = $0 { text } else { nil } } }
  }
  var diagnostics: [Diagnostic] {
    lock.withLock {
      events.flatMap { event -> [Diagnostic] in
        if case .diagnostics(let list) = event { return list }
        return []
      }
    }
  }
}

/// The run library in-process: requests in, events and exit statuses out, with the example
/// playbooks and without touching the network (dry runs, refusals and bad input stop before any
/// key is made).
@Suite struct RunnerTests {
  static let playbooks = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("playbooks").path

  func request(_ playbook: String) -> RunRequest {
    var request = RunRequest(source: .playbook(path: Self.playbooks + "/" + playbook))
    request.inventory = Self.playbooks + "/inventory.yml"
    request.history.enabled = false
    return request
  }

  @Test func aDryRunShowsThePlanAndTouchesNothing() async throws {
    var request = request("rolling-restart.yml")
    request.dryRun = true
    let console = RecordingConsole()
    let status = try await Runner.run(request, console: console)
    #expect(status == .ok)
    #expect(console.plans.count == 1)
    #expect(console.plans[0].hasPrefix("Plan for \(Self.playbooks)/rolling-restart.yml"))
  }

  @Test func eventsCanBeReadAsAStream() async throws {
    var request = request("fleet-uptime.yml")
    request.dryRun = true
    let (events, console) = StreamingConsole.make()
    let status = try await Runner.run(request, console: console)
    console.finish()
    var kinds: [String] = []
    for await event in events {
      switch event {
      case .diagnostics: kinds.append("diagnostics")
      case .plan(let text): kinds.append(text.hasPrefix("Plan for ") ? "plan" : "other")
      default: kinds.append("other")
      }
    }
    #expect(status == .ok)
    #expect(kinds == ["diagnostics", "plan"])
  }

  @Test func aMissingPlaybookIsBadInputWithADiagnostic() async throws {
    let console = RecordingConsole()
    let status = try await Runner.run(request("no-such-playbook.yml"), console: console)
    #expect(status == .badInput)
    #expect(
      console.diagnostics.contains {
        $0.severity == .error && $0.description.contains("no-such-playbook.yml")
      })
    #expect(console.plans.isEmpty)
  }

  @Test func anAdHocCommandIsPlannedFromMemoryAndNamedSixtyExec() async throws {
    var adHoc = AdHocCommand(selector: "role=web", command: ["uptime", "-p"])
    adHoc.batches = ["1", "100%"]
    adHoc.timeout = "30s"
    var request = RunRequest(source: .command(adHoc))
    request.inventory = Self.playbooks + "/inventory.yml"
    request.history.enabled = false
    request.dryRun = true
    let console = RecordingConsole()
    #expect(try await Runner.run(request, console: console) == .ok)
    let plan = try #require(console.plans.first)
    #expect(plan.hasPrefix("Plan for sixty exec"))
    #expect(plan.contains("web-4"))
    #expect(!plan.contains("api-1"))
    // Nothing was written to disk for it.
    #expect(request.playbookLabel == AdHocCommand.label)
  }

  @Test func anAdHocCommandsMistakesNameNoGeneratedFile() async throws {
    var adHoc = AdHocCommand(selector: "all", command: ["true"])
    adHoc.timeout = "forever"
    var request = RunRequest(source: .command(adHoc))
    request.inventory = Self.playbooks + "/inventory.yml"
    request.dryRun = true
    let console = RecordingConsole()
    #expect(try await Runner.run(request, console: console) == .badInput)
    let errors = console.diagnostics.filter { $0.severity == .error }
    #expect(!errors.isEmpty)
    #expect(errors.allSatisfy { $0.location == nil })
  }

  @Test func aRequestSurvivesJSONForTheJobsDaemon() throws {
    var request = request("deploy.yml")
    request.limit = .hosts(["web-1", "web-2"])
    request.extraVars = [ExtraVariable(name: "version", value: "1.2\u{0}\u{202E}")]
    request.notAfter = Date(timeIntervalSince1970: 1_800_000_000)
    request.history = HistorySettings(path: "/var/lib/sixty/history.sqlite")
    request.history.job = "nightly"
    request.history.trigger = .catchUp
    request.history.scheduledFor = Date(timeIntervalSince1970: 1_799_999_000)
    request.reports = ReportPaths(json: "r.json", junit: nil, html: "r.html")
    let data = try JSONEncoder().encode(request)
    #expect(try JSONDecoder().decode(RunRequest.self, from: data) == request)
  }

  @Test func hostLimitsAreRecordedAsTheUserWroteThem() {
    #expect(HostLimit.selector("role=web,env=prod").text == "role=web,env=prod")
    #expect(HostLimit.hosts(["web-1", "db-1"]).text == "web-1 | db-1")
    #expect(HostLimit.hosts(["web-1", "db-1"]).selector != nil)
  }

  @Test func exitStatusesMapToHistoryStatuses() {
    #expect(ExitStatus.ok.runStatus == .succeeded)
    #expect(ExitStatus.hostsFailed.runStatus == .failed)
    #expect(ExitStatus.badInput.runStatus == .error)
    #expect(ExitStatus.refused.runStatus == .refused)
    #expect(ExitStatus.aborted.runStatus == .aborted)
    for code: Int32 in 0...4 { #expect(ExitStatus(rawValue: code)!.runStatus == RunStatus(exitCode: code)) }
  }
}
