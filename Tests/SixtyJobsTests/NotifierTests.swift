import Foundation
import InstanceConnect
import Logging
import SixtyCore
import SixtyHistory
import Testing

@testable import SixtyCalendar
@testable import SixtyJobs

/// Notifications with a fake HTTP transport and real shell commands: retries, give-ups, what is
/// recorded, and that secrets in webhook URLs stay out of records.
@Suite struct NotifierTests {
  final class FakeTransport: HTTPTransport, @unchecked Sendable {
    let lock = NSLock()
    var statuses: [Int]
    var requests: [HTTPRequest] = []
    init(_ statuses: [Int]) { self.statuses = statuses }
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
      let status: Int = lock.withLock {
        requests.append(request)
        return statuses.count > 1 ? statuses.removeFirst() : statuses[0]
      }
      if status == 0 { throw URLError(.cannotConnectToHost) }
      return HTTPResponse(status: status, headers: [:], body: [])
    }
    var count: Int { lock.withLock { requests.count } }
  }

  /// The run as the CLI writes it, in short: its status and the hosts given with their tasks.
  static let encodeRun: Notifier.RunEncoder = { run, hosts, w in
    w.beginObject()
    w.field("id", Int(run.id))
    w.field("status", run.status.rawValue)
    w.key("hosts")
    w.beginArray()
    for host in hosts {
      w.beginObject()
      w.field("host", host.host)
      w.key("tasks")
      w.beginArray()
      for task in host.tasks {
        w.beginObject()
        w.field("name", task.name)
        w.field("stderr_tail", task.stderrTail)
        w.endObject()
      }
      w.endArray()
      w.endObject()
    }
    w.endArray()
    w.endObject()
  }

  func notifier(
    _ history: History, transport: FakeTransport, attempts: Int = 4, baseDelay: TimeInterval = 1,
    commandTimeout: TimeInterval = 60
  ) -> Notifier {
    Notifier(
      history: history, logger: Logger(label: "test"), version: "test", encodeRun: Self.encodeRun,
      transport: transport, attempts: attempts, baseDelay: baseDelay, commandTimeout: commandTimeout)
  }

  let directory = NSTemporaryDirectory() + "sixty-notify-\(UUID().uuidString)"

  func setUp(status: RunStatus) throws -> (History, RunRecord) {
    let history = try History(path: directory + "/history.sqlite")
    let id = try history.begin(
      NewRun(
        playbook: "/p.yml", playbookSHA256: "00", inventory: "/i.yml", policy: nil, job: "nightly",
        hostsTotal: 2))
    try history.record(
      runID: id,
      hosts: [
        HostRecord(play: "p", host: "web-1", address: "10.0.0.1:22", user: "ops", status: .ok),
        HostRecord(
          play: "p", host: "web-2", address: "10.0.0.2:22", user: "ops", status: .failed,
          tasks: [TaskRecord(name: "patch", status: .failed, exitStatus: 2, stderrTail: "E: broken\n")]),
      ])
    try history.finish(id: id, status: status, exitCode: status == .succeeded ? 0 : 1, message: nil)
    return (history, try #require(try history.run(id: id)))
  }

  func job(_ notifications: [Job.Notification]) throws -> Job {
    Job(
      name: "nightly", playbook: "/p.yml", inventory: "/i.yml", policy: nil,
      schedule: try Schedule(parsing: "@daily"),
      timeZone: TimeZone(identifier: "UTC")!, windowDuration: nil, windowCutoff: .seconds(0), overlap: .skip,
      catchUp: .none, enabled: true, notifications: notifications)
  }

  @Test func webhooksRetryServerErrorsThenGiveUpAndRecordWithoutSecrets() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (history, run) = try setUp(status: .failed)
    let transport = FakeTransport([503, 0, 503, 503])
    let notifier = notifier(history, transport: transport, attempts: 4, baseDelay: 0.01)
    let hook = Job.Notification(
      when: .failure, webhook: "https://hooks.example.com/services/T0/B0/SECRET?token=abc")
    await notifier.notify(job: try job([hook]), run: run)
    #expect(transport.count == 4)
    let records = try history.notifications(runID: run.id)
    #expect(records.count == 1)
    #expect(records.first?.outcome == .failed)
    #expect(records.first?.attempts == 4)
    #expect(records.first?.error == "the webhook answered HTTP 503")
    #expect(records.first?.target == "https://hooks.example.com/…")
    // The body is the run summary with the failed host only.
    let body = String(decoding: transport.requests[0].body, as: UTF8.self)
    #expect(body.contains("\"event\":\"run.finished\""))
    #expect(body.contains("\"host\":\"web-2\"") && !body.contains("\"host\":\"web-1\""))
    #expect(body.contains("E: broken"))
    #expect(
      transport.requests[0].headers.contains { $0.name == "Content-Type" && $0.value == "application/json" })
  }

  @Test func clientErrorsAreNotRetriedAndConditionsAreHonoured() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (history, run) = try setUp(status: .succeeded)
    let transport = FakeTransport([404])
    let notifier = notifier(history, transport: transport, baseDelay: 0.01)
    await notifier.notify(
      job: try job([
        Job.Notification(when: .failure, webhook: "https://a.example.com/x"),  // not for a success
        Job.Notification(when: .success, webhook: "https://b.example.com/y"),
        Job.Notification(when: .always, webhookEnv: "SIXTY_TEST_UNSET_HOOK_\(getpid())"),
      ]), run: run)
    #expect(transport.count == 1)
    #expect(transport.requests.first?.url.host == "b.example.com")
    let records = try history.notifications(runID: run.id)
    #expect(records.map(\.outcome) == [.failed, .failed])
    #expect(records[0].attempts == 1)
    #expect(records[0].error == "the webhook answered HTTP 404")
    #expect(records[1].attempts == 0)
    #expect(records[1].error?.contains("is not set, so there is no webhook URL") == true)
    // The run itself is untouched.
    #expect(try history.run(id: run.id)?.status == .succeeded)
  }

  @Test func commandsGetTheSummaryOnStdinAndFailuresAreRecorded() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (history, run) = try setUp(status: .failed)
    let notifier = notifier(history, transport: FakeTransport([200]), commandTimeout: 1)
    let out = directory + "/summary.json"
    await notifier.notify(
      job: try job([
        Job.Notification(
          when: .always, command: "cat > '\(out)'; echo \"$SIXTY_JOB $SIXTY_RUN_STATUS\" >> '\(out)'"),
        Job.Notification(when: .failure, command: "echo nope >&2; exit 3"),
        Job.Notification(when: .always, command: "sleep 10"),
      ]), run: run)
    let written = try String(contentsOfFile: out, encoding: .utf8)
    #expect(written.contains("\"job\":\"nightly\""))
    #expect(written.hasSuffix("nightly failed\n"))
    let records = try history.notifications(runID: run.id)
    #expect(records.map(\.outcome) == [.sent, .failed, .failed])
    #expect(records[1].error == "the command exited 3: nope")
    #expect(records[2].error == "the command did not finish within 1 s and was killed")
  }
}
