// sixty-lock-bench: one of the runners of bench/lock-contention.sh. It takes host locks through
// the run history, as `sixty run` does, over and over: each round it records a run, asks for the
// locks of a random set of the fleet's hosts (all or none, waiting as a run does), holds them
// for a few milliseconds, then finishes the run, which frees them. Every hold is written to OUT
// as `HOST RUNNER START_NS END_NS` (CLOCK_REALTIME, taken inside the hold), so the script can
// check that no host was ever held by two runners at once.
//
//   sixty-lock-bench HISTORY RUNNER HOSTS ROUNDS OUT
import Foundation
import SixtyHistory

let arguments = CommandLine.arguments
guard arguments.count == 6, let runner = Int(arguments[2]), let hostCount = Int(arguments[3]),
  let rounds = Int(arguments[4])
else {
  FileHandle.standardError.write(Data("usage: sixty-lock-bench HISTORY RUNNER HOSTS ROUNDS OUT\n".utf8))
  exit(2)
}
let out = arguments[5]

func nanoseconds() -> UInt64 {
  var now = timespec()
  clock_gettime(CLOCK_REALTIME, &now)
  return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

let history: History
do {
  history = try History(path: arguments[1])
} catch {
  FileHandle.standardError.write(Data("sixty-lock-bench: \(error)\n".utf8))
  exit(1)
}
let hosts = (1...hostCount).map {
  HostLockKey(name: "host-\($0)", address: "10.0.\($0 / 250).\($0 % 250)", port: 22)
}
var generator = SystemRandomNumberGenerator()
var lines = ""
var waits: [Double] = []
var contended = 0
let started = Date()
for _ in 0..<rounds {
  let size = Int.random(in: 5...40, using: &generator)
  let chosen = Array(hosts.shuffled(using: &generator).prefix(size))
  do {
    let id = try history.begin(
      NewRun(playbook: "lock-bench", playbookSHA256: "-", inventory: nil, policy: nil, hostsTotal: size))
    let asked = Date()
    var holder: LockHolder?
    // As a run with host_lock: wait does, polling every 20 ms.
    while true {
      holder = try history.tryLock(runID: id, hosts: chosen)
      if holder == nil || Date().timeIntervalSince(asked) > 60 { break }
      contended += 1
      usleep(20_000)
    }
    waits.append(Date().timeIntervalSince(asked))
    if holder == nil {
      let start = nanoseconds()
      usleep(UInt32.random(in: 2_000...10_000, using: &generator))
      let end = nanoseconds()
      for host in chosen { lines += "\(host.name) \(runner) \(start) \(end)\n" }
      try history.finish(id: id, status: .succeeded, exitCode: 0, message: nil)
    } else {
      try history.finish(id: id, status: .refused, exitCode: 3, message: "lock wait over 60 s")
      FileHandle.standardError.write(Data("runner \(runner): a lock wait passed 60 s\n".utf8))
    }
  } catch {
    FileHandle.standardError.write(Data("sixty-lock-bench: runner \(runner): \(error)\n".utf8))
    exit(1)
  }
}
let elapsed = Date().timeIntervalSince(started)
// Not atomically: an atomic write renames a temporary file over OUT, which would replace /dev/null.
try? lines.write(toFile: out, atomically: false, encoding: .utf8)
waits.sort()
let p50 = waits.isEmpty ? 0 : waits[waits.count / 2]
let p99 = waits.isEmpty ? 0 : waits[min(waits.count - 1, Int(Double(waits.count) * 0.99))]
print(
  String(
    format: "runner %d: %d rounds in %.2f s, lock wait p50 %.1f ms p99 %.1f ms, %d busy answers", runner,
    rounds,
    elapsed, p50 * 1000, p99 * 1000, contended))
