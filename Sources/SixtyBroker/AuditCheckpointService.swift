import Crypto
import Foundation
import Logging
import ServiceLifecycle
import SixtyAudit

/// Signs the audit log's head into its checkpoint file: at start when the file lags the log (after
/// a crash), every `interval` while records were added, as soon as `everyRecords` were added, and
/// a last time at graceful shutdown (this service is shut down after the HTTP server, so the last
/// checkpoint covers every record).
///
/// `step(now:)` holds the decisions and takes the time from the caller, so tests drive it with a
/// fake clock; `run()` calls it every `tick`.
// Sendable: its settings are Sendable constants and `lastTime`, the only mutable state, is behind `lock`.
public final class AuditCheckpointService: Service, @unchecked Sendable {
  let log: AuditLog
  let signingKey: Curve25519.Signing.PrivateKey
  let interval: TimeInterval
  let everyRecords: Int
  let tick: Duration
  let clock: @Sendable () -> Date
  let logger: Logger
  // `lock` protects `lastTime`.
  private let lock = NSLock()
  private var lastTime: Date?

  public init(
    log: AuditLog, signingKey: Curve25519.Signing.PrivateKey, interval: TimeInterval = 10,
    everyRecords: Int = 1000, tick: Duration = .seconds(1), logger: Logger,
    clock: @escaping @Sendable () -> Date = { Date() }
  ) {
    self.log = log
    self.signingKey = signingKey
    self.interval = interval
    self.everyRecords = everyRecords
    self.tick = tick
    self.logger = logger
    self.clock = clock
  }

  /// Writes a checkpoint when one is due (or `force` and the head moved since the last one).
  /// - Returns: the checkpoint written, if any.
  @discardableResult
  public func step(now: Date, force: Bool = false) -> AuditCheckpoint? {
    let sequence = log.status.sequence
    let last = log.lastCheckpoint
    let pending = sequence - (last?.sequence ?? -1)
    let due = lock.withLock { () -> Bool in
      guard pending > 0 else { return false }
      if force || last == nil || pending >= everyRecords { return true }
      guard let lastTime else { return true }  // first step after start: the file lags the log
      return now.timeIntervalSince(lastTime) >= interval
    }
    guard due else { return nil }
    do {
      let checkpoint = try log.checkpoint(signingKey: signingKey, time: now)
      lock.withLock { lastTime = now }
      logger.debug(
        "signed the audit log's head",
        metadata: ["seq": "\(checkpoint.sequence)", "head": "\(checkpoint.head)"])
      return checkpoint
    } catch {
      logger.error("cannot checkpoint the audit log: \(error)")
      return nil
    }
  }

  public func run() async throws {
    step(now: clock())
    while !Task.isShuttingDownGracefully && !Task.isCancelled {
      try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.tick) }
      step(now: clock())
    }
    if let checkpoint = step(now: clock(), force: true) {
      logger.info("audit log checkpoint at shutdown: record \(checkpoint.sequence), head \(checkpoint.head)")
    }
  }
}
