import Foundation
import SixtyHistory
import Testing

/// The history side of sharded runs on a real PostgreSQL server: shards joining one run, the
/// refusals, a dead shard swept, the run's final status from its shards', and the failure count.
@Suite(.serialized) struct ShardHistoryTests {
  func newRun(sha: String = "abc", process: ProcessIdentity = .current) -> NewRun {
    NewRun(
      playbook: "/p/site.yml", playbookSHA256: sha, inventory: "/p/inv.yml", policy: nil, process: process,
      hostsTotal: 40)
  }

  func message(_ body: () throws -> Void) -> String {
    do {
      try body()
      return "accepted"
    } catch {
      return "\(error)"
    }
  }

  @Test(.enabled(if: TestPostgres.binDirectory != nil, "needs PostgreSQL (make test installs it)"))
  func shardsJoinOneRunWhichEndsWhenTheyAllHave() throws {
    let postgres = try TestPostgres.shared()
    setenv("PGPASSWORD", postgres.password, 1)
    let history = try History(path: try postgres.database("shardjoin"))
    let first = try history.joinShard(
      newRun(), join: ShardJoin(key: "k1", shard: 1, count: 3, derived: false))
    // A process that is gone (no such pid): swept as soon as anyone looks.
    let dead = ProcessIdentity(pid: 999_999, start: "1")
    let second = try history.joinShard(
      newRun(process: dead), join: ShardJoin(key: "k1", shard: 2, count: 3, derived: false))
    #expect(first == second)
    #expect(
      message {
        _ = try history.joinShard(newRun(), join: ShardJoin(key: "k1", shard: 3, count: 4, derived: false))
      }
      .contains("has 3 shards, and this is --shard 3/4; expected --shard I/3"))
    #expect(
      message {
        _ = try history.joinShard(
          newRun(sha: "def"), join: ShardJoin(key: "k1", shard: 3, count: 3, derived: false))
      }.contains("every shard of a run must run the same playbook"))
    #expect(
      message {
        _ = try history.joinShard(newRun(), join: ShardJoin(key: "k1", shard: 1, count: 3, derived: false))
      }
      .contains("shard 1/3 of run \(first) (run id 'k1') is already running"))

    #expect(try history.addFailure(runID: first, play: 0) == 1)
    #expect(try history.addFailure(runID: first, play: 0) == 2)
    #expect(try history.addFailure(runID: first, play: 1) == 1)
    #expect(try history.failures(runID: first, play: 0) == 2)

    #expect(try history.sweepInterrupted() == [first])
    var shards = try history.shards(runID: first)
    #expect(shards.map(\.status) == [.running, .interrupted])
    #expect(try history.run(id: first)?.status == .running)
    try history.finish(id: first, shard: 1, status: .succeeded, exitCode: 0, message: nil)
    #expect(try history.run(id: first)?.status == .running, "shard 3 has not run")
    let third = try history.joinShard(
      newRun(), join: ShardJoin(key: "k1", shard: 3, count: 3, derived: false))
    #expect(third == first)
    try history.finish(id: first, shard: 3, status: .failed, exitCode: 1, message: "1 host failed")
    let run = try #require(try history.run(key: "k1"))
    #expect(run.id == first)
    #expect(run.status == .failed)
    #expect(run.exitCode == 1)
    #expect(run.message == "shard 3/3: 1 host failed")
    #expect(run.shards == 3 && run.shardsEnded == 3)
    shards = try history.shards(runID: first)
    #expect(shards.map(\.status) == [.succeeded, .interrupted, .failed])
    // An explicit run id whose shard ran is refused; a derived one starts a new run.
    #expect(
      message {
        _ = try history.joinShard(newRun(), join: ShardJoin(key: "k1", shard: 2, count: 3, derived: false))
      }
      .contains("already ran (interrupted); pass another --run-id"))
    let derived = try history.joinShard(
      newRun(), join: ShardJoin(key: "d1", shard: 1, count: 2, derived: true))
    try history.finish(id: derived, shard: 1, status: .succeeded, exitCode: 0, message: nil)
    let next = try history.joinShard(newRun(), join: ShardJoin(key: "d1", shard: 1, count: 2, derived: true))
    #expect(next != derived)
    #expect(try history.run(key: "d1")?.id == next)
    #expect(try history.run(id: derived)?.runKey == "d1#\(derived)")
    // Host locks are per shard: a shard's end frees only its own.
    let keyA = HostLockKey(name: "a", address: "10.0.0.1", port: 22)
    let keyB = HostLockKey(name: "b", address: "10.0.0.2", port: 22)
    let other = try history.joinShard(newRun(), join: ShardJoin(key: "d1", shard: 2, count: 2, derived: true))
    #expect(other == next)
    #expect(try history.tryLock(runID: next, shard: 1, hosts: [keyA]) == nil)
    #expect(try history.tryLock(runID: next, shard: 2, hosts: [keyB]) == nil)
    try history.finish(id: next, shard: 1, status: .succeeded, exitCode: 0, message: nil)
    #expect(try history.locks().map(\.host) == ["b"])
    try history.finish(id: next, shard: 2, status: .succeeded, exitCode: 0, message: nil)
    #expect(try history.locks().isEmpty)
    #expect(try history.run(id: next)?.status == .succeeded)
    // A SQLite history has no shards.
    let file = NSTemporaryDirectory() + "/sixty-shards-\(UUID().uuidString).sqlite"
    defer { try? FileManager.default.removeItem(atPath: file) }
    let local = try History(path: file)
    #expect(
      message {
        _ = try local.joinShard(newRun(), join: ShardJoin(key: "k", shard: 1, count: 2, derived: false))
      }
      .contains("--shard needs a shared history"))
  }
}
