import Foundation
import SixtyCore
import SixtyPlanning
import Testing

@testable import SixtyRun
@testable import SixtyScheduler

/// A play's plan turned into the scheduler's hosts and the executor's targets, and the recap.
@Suite struct ExecutionPlanTests {
  func plan(_ playbook: String, limit: String? = nil) async throws -> Plan {
    var request = RunRequest(source: .playbook(path: RunnerTests.playbooks + "/" + playbook))
    request.inventory = RunnerTests.playbooks + "/inventory.yml"
    request.limit = limit.map(HostLimit.selector)
    let loaded = await Runner.load(request)
    return try #require(loaded.plan, "\(loaded.diagnostics)")
  }

  @Test func everyTargetedHostGetsItsTasksTargetsAndInstance() async throws {
    let plan = try await plan("demo.yml", limit: "role=web")
    let play = try #require(plan.plays.first)
    let execution = ExecutionPlan(play)
    #expect(execution.hosts.map(\.name) == ["web-1", "web-2", "web-3", "web-4", "stage-1"])
    for host in execution.hosts {
      #expect(host.tasks.map(\.name) == ["whoami", "kernel", "health check", "report"])
      // "health check" needs whoami; "report" needs both others.
      #expect(host.tasks[2].needs == [0])
      #expect(Set(host.tasks[3].needs) == [1, 2])
      #expect(execution.targets[host.name] != nil)
      #expect(execution.taskNames[host.name] == host.tasks.map(\.name))
    }
    #expect(execution.instances["web-1"]?.id == "i-0a1b2c3d4e5f60001")
    #expect(execution.instances["web-1"]?.zone == "eu-west-1a")
    // batches: [1, 100%]
    #expect(execution.batches == [[0], [1, 2, 3, 4]])
  }

  @Test func theRecapListsEveryHostWithItsCounts() {
    var ok = HostResult(tasks: [.ok(0), .ok(0)], attempts: [1, 1])
    ok.status = .ok
    ok.pushes = [10]
    ok.authenticated = 10.25
    var failed = HostResult(tasks: [.ok(0), .failed("exit status 3")], attempts: [1, 2])
    failed.status = .failed
    failed.message = "task b failed"
    let summary = RunSummary(
      plays: [
        .init(
          name: "p", hosts: ["web-1", "web-2"], result: RunResult(outcome: .completed, hosts: [ok, failed]))
      ],
      stoppedBefore: nil, outputs: OutputCollector())
    let recap = TerminalConsole.recap(summary)
    #expect(recap.contains("\nRECAP\n"))
    #expect(recap.contains("web-1                ok            2       0        0  250 ms\n"))
    #expect(recap.contains("web-2                failed        1       1        0  -  (task b failed)\n"))
  }

  @Test func wallAndSchedulerTimesConvertBothWays() {
    let anchor = TimeAnchor()
    let later = anchor.wall.addingTimeInterval(12.5)
    #expect(abs(anchor.date(anchor.monotonic(later)).timeIntervalSince(later)) < 1e-6)
    #expect(abs(anchor.monotonic(anchor.wall) - anchor.uptime) < 1e-9)
  }
}
