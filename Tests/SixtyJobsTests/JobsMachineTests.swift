import Foundation
import SixtyCore
import SixtyHistory
import Testing

@testable import SixtyCalendar
@testable import SixtyJobs

/// The daemon's decisions on a manual clock counted in milliseconds: nothing sleeps, nothing
/// reads the wall clock.
@Suite struct JobsMachineTests {
  /// The manual clock: a time `ms` milliseconds after 1970.
  func at(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

  func job(
    _ name: String, every seconds: Int = 60, overlap: Job.Overlap = .skip, catchUp: Job.CatchUp = .none,
    window: TimeSpan? = nil, enabled: Bool = true, shutdown: Job.Shutdown = .finish
  ) -> Job {
    var job = Job(
      name: name, playbook: "/p.yml", inventory: "/i.yml", policy: nil,
      schedule: .rate(seconds: seconds, text: "rate(\(seconds) seconds)"),
      timeZone: TimeZone(identifier: "UTC")!, windowDuration: window, windowCutoff: .seconds(0),
      overlap: overlap,
      catchUp: catchUp, enabled: enabled, notifications: [])
    job.shutdown = shutdown
    return job
  }

  func launches(_ actions: [JobsAction]) -> [JobsLaunch] {
    actions.compactMap { if case .launch(let launch) = $0 { launch } else { nil } }
  }

  func skipped(_ actions: [JobsAction]) -> [String] {
    actions.compactMap { if case .recordSkipped(_, _, _, let message) = $0 { message } else { nil } }
  }

  func lastFires(_ actions: [JobsAction]) -> [Date] {
    actions.compactMap { if case .recordLastFire(_, let at) = $0 { at } else { nil } }
  }

  func messages(_ actions: [JobsAction]) -> [String] {
    actions.compactMap { if case .log(_, let message, _) = $0 { message } else { nil } }
  }

  /// Starts a machine at `now` with no history and launches whatever it fires as pid 100, 101, …
  func started(_ jobs: [Job], now: Int64) -> JobsMachine {
    var machine = JobsMachine(jobs: jobs)
    _ = machine.handle(.start(lastFires: [:]), now: at(now))
    return machine
  }

  func launch(_ machine: inout JobsMachine, _ actions: [JobsAction], pid: pid_t) {
    for launch in launches(actions) {
      _ = machine.handle(.launched(job: launch.job.name, pid: pid, log: "/l"), now: launch.scheduled)
    }
  }

  @Test func firesAtTheScheduleTimesAndSleepsUntilThem() {
    var machine = started([job("a")], now: 1_000)
    #expect(machine.nextFire["a"] == at(60_000))
    #expect(machine.sleep(now: at(1_000), maxSleep: 30) == 30)
    #expect(machine.sleep(now: at(45_000), maxSleep: 30) == 15)
    #expect(launches(machine.handle(.wake, now: at(59_999))).isEmpty)
    let actions = machine.handle(.wake, now: at(60_000))
    #expect(launches(actions).map(\.scheduled) == [at(60_000)])
    #expect(launches(actions).first?.trigger == .schedule)
    #expect(lastFires(actions) == [at(60_000)])
    #expect(machine.nextFire["a"] == at(120_000))
  }

  @Test func aNewJobMissesNothingAndStartsFromNow() {
    var machine = JobsMachine(jobs: [job("a", catchUp: .once)])
    let actions = machine.handle(.start(lastFires: [:]), now: at(500_000))
    #expect(launches(actions).isEmpty)
    #expect(lastFires(actions) == [at(500_000)])
    #expect(messages(actions) == ["job loaded"])
  }

  @Test func missedFiresAreCaughtUpOnceOrDropped() {
    var once = JobsMachine(jobs: [job("a", catchUp: .once)])
    let caught = once.handle(.start(lastFires: ["a": at(60_000)]), now: at(250_000))
    #expect(launches(caught).map(\.scheduled) == [at(240_000)])
    #expect(launches(caught).first?.trigger == .catchUp)
    #expect(messages(caught).contains("catching up a missed fire"))
    #expect(lastFires(caught) == [at(240_000)])
    #expect(once.nextFire["a"] == at(300_000))

    var none = JobsMachine(jobs: [job("a")])
    let dropped = none.handle(.start(lastFires: ["a": at(60_000)]), now: at(250_000))
    #expect(launches(dropped).isEmpty)
    #expect(messages(dropped).contains("missed fires dropped (catch_up: none)"))
    #expect(lastFires(dropped) == [at(240_000)])
    #expect(none.nextFire["a"] == at(300_000))
  }

  @Test func firesMissedWhileSuspendedCoalesceIntoTheLatest() {
    var machine = started([job("a")], now: 0)
    let actions = machine.handle(.wake, now: at(185_000))
    #expect(launches(actions).map(\.scheduled) == [at(180_000)])
    #expect(messages(actions).contains("fires coalesced (the daemon was suspended or the clock jumped)"))
    #expect(machine.nextFire["a"] == at(240_000))
  }

  @Test func overlappingFiresAreSkippedWhileTheRunGoes() {
    var machine = started([job("a")], now: 0)
    let first = machine.handle(.wake, now: at(60_000))
    launch(&machine, first, pid: 100)
    let second = machine.handle(.wake, now: at(120_000))
    #expect(launches(second).isEmpty)
    #expect(
      skipped(second) == [
        "the run started for 1970-01-01T00:01:00.000Z (process 100) was still going (overlap: skip)"
      ])
    let ended = machine.handle(.exited(job: "a", pid: 100, status: 0), now: at(130_000))
    #expect(ended.count == 1)
    #expect(machine.running.isEmpty)
    #expect(launches(machine.handle(.wake, now: at(180_000))).count == 1)
  }

  @Test func aQueuedFireRunsWhenTheCurrentOneEndsAndOnlyOneIsQueued() {
    var machine = started([job("a", overlap: .queue)], now: 0)
    launch(&machine, machine.handle(.wake, now: at(60_000)), pid: 100)
    let queued = machine.handle(.wake, now: at(120_000))
    #expect(messages(queued) == ["fire queued behind the running run (overlap: queue)"])
    let again = machine.handle(.wake, now: at(180_000))
    #expect(
      skipped(again) == [
        "a run for 1970-01-01T00:02:00.000Z was already queued behind the running one (overlap: queue)"
      ])
    // An exit of another pid (a run since replaced) changes nothing.
    #expect(machine.handle(.exited(job: "a", pid: 99, status: 0), now: at(190_000)).isEmpty)
    let ended = machine.handle(.exited(job: "a", pid: 100, status: 0), now: at(200_000))
    let next = launches(ended)
    #expect(next.map(\.scheduled) == [at(120_000)])
    #expect(next.first?.trigger == .queued)
    #expect(machine.queued.isEmpty)
  }

  @Test func aFireWhoseWindowClosedIsSkipped() {
    var machine = JobsMachine(jobs: [job("a", catchUp: .once, window: .seconds(30))])
    let actions = machine.handle(.start(lastFires: ["a": at(0)]), now: at(100_000))
    #expect(launches(actions).isEmpty)
    #expect(
      skipped(actions) == [
        "the job's window for the fire at 1970-01-01T00:01:00.000Z closed at 1970-01-01T00:01:30.000Z"
      ])
    // On time, the run gets the window's end as its limit.
    let onTime = launches(machine.handle(.wake, now: at(120_000)))
    #expect(onTime.first?.notAfter == at(150_000))
  }

  @Test func aReloadAddsRemovesAndReschedulesJobs() {
    var machine = started([job("kept"), job("changed"), job("gone", overlap: .queue)], now: 0)
    launch(&machine, machine.handle(.wake, now: at(60_000)), pid: 100)
    let actions = machine.handle(
      .reload([job("kept"), job("changed", every: 300), job("new")]), now: at(90_000))
    #expect(machine.jobs.map(\.name) == ["kept", "changed", "new"])
    #expect(machine.nextFire["kept"] == at(120_000))
    #expect(machine.nextFire["changed"] == at(300_000))
    #expect(machine.nextFire["new"] == at(120_000))
    #expect(machine.nextFire["gone"] == nil)
    #expect(messages(actions) == ["job loaded", "job loaded", "job added", "job removed"])
    // Only the new job starts its history from now.
    #expect(lastFires(actions) == [at(90_000)])
    // A removed job's run still ends normally.
    #expect(machine.running["gone"] != nil)
    let ended = machine.handle(.exited(job: "gone", pid: 100, status: 0), now: at(95_000))
    #expect(launches(ended).isEmpty)
  }

  @Test func shutdownWaitsForRunsInterruptsAbortsAndDropsTheQueue() {
    var machine = started(
      [job("finish", overlap: .queue), job("abort", shutdown: .abort)], now: 0)
    let first = machine.handle(.wake, now: at(60_000))
    for launch in launches(first) {
      _ = machine.handle(
        .launched(job: launch.job.name, pid: launch.job.name == "finish" ? 100 : 200, log: "/l"),
        now: at(60_000))
    }
    _ = machine.handle(.wake, now: at(120_000))
    #expect(machine.queued["finish"] == at(120_000))
    let stopping = machine.handle(.shutdown(force: false), now: at(130_000))
    #expect(messages(stopping).first == "stopping")
    #expect(skipped(stopping) == ["the daemon stopped before it could run"])
    let signals = stopping.compactMap {
      if case .signal(let pid, let signal) = $0 { [pid, signal] } else { nil }
    }
    #expect(signals == [[200, SIGINT]])
    #expect(!machine.isFinished)
    #expect(machine.sleep(now: at(130_000), maxSleep: 30) == 30)
    // No fire while stopping.
    #expect(machine.handle(.wake, now: at(180_000)).isEmpty)
    _ = machine.handle(.exited(job: "abort", pid: 200, status: 4), now: at(181_000))
    #expect(!machine.isFinished)
    _ = machine.handle(.exited(job: "finish", pid: 100, status: 0), now: at(182_000))
    #expect(machine.isFinished)
  }

  @Test func aForcedShutdownKillsRunningTasks() {
    var machine = started([job("a")], now: 0)
    launch(&machine, machine.handle(.wake, now: at(60_000)), pid: 100)
    let actions = machine.handle(.shutdown(force: true), now: at(61_000))
    let signals = actions.compactMap {
      if case .signal(let pid, let signal) = $0 { [pid, signal] } else { nil }
    }
    #expect(signals == [[100, SIGTERM]])
  }

  @Test func aFailedLaunchLeavesNothingRunning() {
    var machine = started([job("a")], now: 0)
    _ = machine.handle(.wake, now: at(60_000))
    #expect(machine.running["a"] != nil)
    _ = machine.handle(.launchFailed(job: "a"), now: at(60_000))
    #expect(machine.running.isEmpty)
  }
}
