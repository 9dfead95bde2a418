import Foundation
import SixtyCore
import SixtyHistory
import SixtyPlanning
import SixtyScheduler

extension RunRequest {
  /// Why `key` cannot be a `--run-id`, or nil when it can.
  public static func runKeyProblem(_ key: String) -> String? { ShardRun.problem(withKey: key) }
}

/// What a shard of a sharded run (`--shard I/N`) shares with the other shards.
enum ShardRun {
  /// The longest `--run-id`.
  static let maxKeyLength = 128

  /// Why `key` cannot be a run id (printable ASCII, no spaces, 1 to `maxKeyLength` characters),
  /// or nil when it can.
  static func problem(withKey key: String) -> String? {
    if key.isEmpty { return "--run-id is empty; expected 1 to \(maxKeyLength) printable ASCII characters." }
    guard key.utf8.count <= maxKeyLength else {
      return
        "--run-id is \(key.utf8.count) bytes long; expected at most \(maxKeyLength) printable ASCII characters."
    }
    guard key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
      return
        "--run-id \(SafeText.quoted(key, limit: 60)) holds a space, a control or a non-ASCII character; expected printable ASCII (letters, digits and punctuation such as - _ . : /)."
    }
    return nil
  }

  /// The run key the shards of a run share when no `--run-id` is given: a digest of the run's
  /// inputs (the playbook's content, the inventory's, the policy's, the limit, the extra
  /// variables and the number of shards), so shards started apart from the same inputs agree.
  static func derivedKey(request: RunRequest, plan: Plan, playbookDigest: String, shards: Int) -> String {
    func content(_ path: String?) -> String {
      guard let path else { return "-" }
      if let data = FileManager.default.contents(atPath: path) { return FileDigest.sha256(data) }
      return "text:" + path
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let vars = (try? encoder.encode(request.extraVars)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    let parts = [
      "sixty-shards-v1", playbookDigest, content(plan.inventoryPath), content(plan.policyPath),
      request.limit?.text ?? "-", vars, String(shards),
    ]
    let digest = FileDigest.sha256(Array(parts.joined(separator: "\u{0}").utf8))
    return "derived-" + digest.prefix(32)
  }
}

/// The failed hosts of one play of a sharded run, counted in the shared history: each failure of
/// this shard is written at once (in the background, in order), and the run-wide count is read
/// every 250 ms while the play runs. Reads and writes take turns on one queue, so a failure is
/// never counted twice.
// @unchecked: `known`, `unwritten` and `timer` are behind `lock`.
final class ShardFailureCounter: SharedFailureCount, @unchecked Sendable {
  let history: History
  let runID: Int64
  let play: Int
  let scope: String
  let queue = DispatchQueue(label: "sixty.shard-failures")
  let lock = NSLock()
  var known = 0
  var unwritten = 0
  var timer: (any DispatchSourceTimer)?
  let warn: @Sendable (String) -> Void

  init(history: History, runID: Int64, play: Int, shards: Int, warn: @escaping @Sendable (String) -> Void) {
    self.history = history
    self.runID = runID
    self.play = play
    self.warn = warn
    scope = "across the run's \(shards) shards"
    // The count before this play's first host: other shards may have started it already.
    refresh()
    let timer = DispatchSource.makeTimerSource(queue: queue)
    timer.schedule(
      deadline: .now() + .milliseconds(250), repeating: .milliseconds(250), leeway: .milliseconds(50))
    timer.setEventHandler { [weak self] in self?.refresh() }
    lock.withLock { self.timer = timer }
    timer.resume()
  }

  /// Stops reading (the play is over).
  func stop() {
    lock.withLock {
      timer?.cancel()
      timer = nil
    }
  }

  deinit { timer?.cancel() }

  var failedHosts: Int { lock.withLock { known + unwritten } }

  func hostFailed() {
    lock.withLock { unwritten += 1 }
    queue.async { [self] in
      do {
        let count = try history.addFailure(runID: runID, play: play)
        lock.withLock {
          unwritten -= 1
          known = max(known, count)
        }
      } catch {
        // Still counted here; the other shards do not see it.
        warn("sixty: warning: \(error) (while counting a failed host for the other shards).")
      }
    }
  }

  func refresh() {
    guard let count = try? history.failures(runID: runID, play: play) else { return }
    lock.withLock { known = max(known, count) }
  }
}
