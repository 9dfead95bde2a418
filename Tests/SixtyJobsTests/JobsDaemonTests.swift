import Foundation
import Logging
import SixtyCore
import SixtyHistory
import Testing

@testable import SixtyCalendar
@testable import SixtyJobs

/// A clock that moves only when told to.
final class ManualClock: JobsClock, @unchecked Sendable {
  // Safe: `current` and `sleepers` are read and written only under `lock`.
  private let lock = NSLock()
  private var current: Date
  private var sleepers: [UUID: (deadline: Date, continuation: CheckedContinuation<Void, any Error>)] = [:]

  init(_ start: Date) { current = start }

  func now() -> Date { lock.withLock { current } }

  /// How many sleeps are waiting (a cancelled one is not).
  var sleeping: Int { lock.withLock { sleepers.count } }

  func sleep(for seconds: TimeInterval) async throws {
    let id = UUID()
    try await withTaskCancellationHandler {
      try await withCheckedThrowingContinuation { continuation in
        let cancelled: Bool? = lock.withLock {
          if Task.isCancelled { return true }
          if seconds <= 0 { return false }
          sleepers[id] = (current.addingTimeInterval(seconds), continuation)
          return nil
        }
        switch cancelled {
        case true?: continuation.resume(throwing: CancellationError())
        case false?: continuation.resume()
        case nil: break
        }
      }
    } onCancel: {
      let sleeper = lock.withLock { sleepers.removeValue(forKey: id) }
      sleeper?.continuation.resume(throwing: CancellationError())
    }
  }

  /// Moves the time to `date` and wakes the sleepers whose time has come.
  func advance(to date: Date) {
    let due = lock.withLock {
      current = date
      let due = sleepers.filter { $0.value.deadline <= date }
      for id in due.keys { sleepers[id] = nil }
      return due.values
    }
    for sleeper in due { sleeper.continuation.resume() }
  }
}

/// A launcher that starts nothing: it records requests, and the test ends runs.
final class FakeLauncher: RunLauncher, @unchecked Sendable {
  // Safe: `requests` and `exits` are read and written only under `lock`.
  private let lock = NSLock()
  private var requests: [JobRunRequest] = []
  private var exits: [pid_t: @Sendable (pid_t, Int32) -> Void] = [:]

  func launch(_ run: JobRunRequest, exited: @escaping @Sendable (pid_t, Int32) -> Void) throws -> pid_t {
    lock.withLock {
      requests.append(run)
      // Pids far above any real one: nothing is ever signalled by mistake.
      let pid = pid_t(4_000_000 + requests.count)
      exits[pid] = exited
      return pid
    }
  }

  var launched: [JobRunRequest] { lock.withLock { requests } }

  func end(_ index: Int, status: Int32) {
    let pid = pid_t(4_000_001 + index)
    let exit = lock.withLock { exits.removeValue(forKey: pid) }
    exit?(pid, status)
  }
}

/// The daemon as a service on a manual clock: fires on schedule times, skips overlapping fires
/// (recorded in the history), never runs a job twice at once, and stops.
@Suite struct JobsDaemonTests {
  let directory = NSTemporaryDirectory() + "sixty-daemon-\(UUID().uuidString)"

  func at(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

  /// Lets the daemon's task run until `condition` holds and it waits on the clock again.
  func settle(_ clock: ManualClock, until condition: () throws -> Bool = { true }) async rethrows {
    for _ in 0..<100_000 {
      await Task.yield()
      if try condition() && clock.sleeping > 0 { return }
    }
  }

  @Test func firesOnScheduleSkipsOverlapsAndStops() async throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let history = try History(path: directory + "/history.sqlite")
    let job = Job(
      name: "slow", playbook: directory + "/slow.yml", inventory: "/i.yml", policy: nil,
      schedule: .rate(seconds: 2, text: "rate(2 seconds)"), timeZone: TimeZone(identifier: "UTC")!,
      windowDuration: nil, windowCutoff: .seconds(0), overlap: .skip, catchUp: .none, enabled: true,
      notifications: [])
    let clock = ManualClock(at(1_000_500))
    let launcher = FakeLauncher()
    let logger = Logger(label: "test")
    let daemon = JobsDaemon(
      jobsPath: directory + "/jobs.yml", jobs: [job], history: history, logDirectory: directory + "/logs",
      launcher: launcher,
      notifier: Notifier(history: history, logger: logger, version: "test", encodeRun: { _, _, _ in }),
      clock: clock, logger: logger, trapsHangup: false)
    let service = Task { try await daemon.run() }
    try await settle(clock)
    #expect(launcher.launched.isEmpty)

    // Fires on even seconds, each passed as the run's scheduled time.
    clock.advance(to: at(1_002_000))
    await settle(clock) { launcher.launched.count == 1 }
    #expect(launcher.launched.map(\.scheduled) == [at(1_002_000)])
    let first = try #require(launcher.launched.first)
    #expect(first.trigger == .schedule && first.job == "slow" && first.historyPath == history.path)
    #expect(first.logPath == directory + "/logs/slow/1970-01-01T001642.000Z-schedule.log")

    // The run is still going at the next fire: skipped, and recorded.
    clock.advance(to: at(1_004_000))
    try await settle(clock) { try history.runs(limit: 10).count == 1 }
    #expect(launcher.launched.count == 1)
    let runs = try history.runs(limit: 10)
    #expect(runs.count == 1)
    #expect(runs.first?.status == .skipped)
    #expect(runs.first?.message?.contains("was still going (overlap: skip)") == true)

    // Once it ends, the next fire starts a run.
    launcher.end(0, status: 0)
    try await settle(clock) { try history.runs(limit: 10).count == 2 }
    clock.advance(to: at(1_006_000))
    await settle(clock) { launcher.launched.count == 2 }
    #expect(launcher.launched.map(\.scheduled) == [at(1_002_000), at(1_006_000)])
    launcher.end(1, status: 0)
    try await settle(clock) { try history.runs(limit: 10).count == 3 }

    service.cancel()
    try await service.value
    #expect(try history.lastFire(job: "slow") == at(1_006_000))
  }
}
