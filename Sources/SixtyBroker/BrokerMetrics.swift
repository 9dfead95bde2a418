import Foundation
import SixtyAudit

/// Prometheus-style counters and a latency histogram.
// Sendable: every counter and the histogram are read and written only under `lock`.
public final class BrokerMetrics: @unchecked Sendable {
  // `lock` protects every counter below.
  private let lock = NSLock()
  private var pushes: [String: Int] = [:]  // outcome -> count
  private var refusals: [String: Int] = [:]  // reason -> count
  private var fetches: [String: Int] = [:]  // outcome -> count
  private static let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
  private var latencyCounts = [Int](repeating: 0, count: BrokerMetrics.buckets.count + 1)
  private var latencySum = 0.0

  public init() {}

  func push(accepted: Bool, reason: String?) {
    lock.withLock {
      pushes[accepted ? "accepted" : "refused", default: 0] += 1
      if let reason { refusals[reason, default: 0] += 1 }
    }
  }

  func fetch(outcome: String) { lock.withLock { fetches[outcome, default: 0] += 1 } }

  func observe(seconds: Double) {
    lock.withLock {
      latencySum += seconds
      let index = BrokerMetrics.buckets.firstIndex { seconds <= $0 } ?? BrokerMetrics.buckets.count
      latencyCounts[index] += 1
    }
  }

  /// The text exposition format; `audit` is the audit log, whose head it shows.
  func render(activeKeys: Int, audit: AuditLog? = nil) -> String {
    let head = audit?.status
    let checkpoint = audit?.lastCheckpoint
    return lock.withLock {
      var out =
        "# HELP sixty_broker_pushes_total Key pushes by outcome.\n# TYPE sixty_broker_pushes_total counter\n"
      for outcome in ["accepted", "refused"] {
        out += "sixty_broker_pushes_total{outcome=\"\(outcome)\"} \(pushes[outcome, default: 0])\n"
      }
      out +=
        "# HELP sixty_broker_refusals_total Refused pushes by reason.\n# TYPE sixty_broker_refusals_total counter\n"
      for (reason, count) in refusals.sorted(by: { $0.key < $1.key }) {
        out += "sixty_broker_refusals_total{reason=\"\(reason)\"} \(count)\n"
      }
      out +=
        "# HELP sixty_broker_agent_fetches_total Agent key-list fetches by outcome.\n# TYPE sixty_broker_agent_fetches_total counter\n"
      for (outcome, count) in fetches.sorted(by: { $0.key < $1.key }) {
        out += "sixty_broker_agent_fetches_total{outcome=\"\(outcome)\"} \(count)\n"
      }
      out += "# HELP sixty_broker_active_keys Keys currently valid.\n# TYPE sixty_broker_active_keys gauge\n"
      out += "sixty_broker_active_keys \(activeKeys)\n"
      out +=
        "# HELP sixty_broker_request_seconds Request latency.\n# TYPE sixty_broker_request_seconds histogram\n"
      var cumulative = 0
      for (i, bound) in BrokerMetrics.buckets.enumerated() {
        cumulative += latencyCounts[i]
        out += "sixty_broker_request_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
      }
      cumulative += latencyCounts[BrokerMetrics.buckets.count]
      out += "sixty_broker_request_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
      out += "sixty_broker_request_seconds_sum \(latencySum)\n"
      out += "sixty_broker_request_seconds_count \(cumulative)\n"
      if let head {
        out +=
          "# HELP sixty_audit_sequence The audit log's newest record.\n# TYPE sixty_audit_sequence gauge\n"
        out += "sixty_audit_sequence \(head.sequence)\n"
        out +=
          "# HELP sixty_audit_head_info The audit log's newest record and its hash (compare with the log to detect removed records).\n# TYPE sixty_audit_head_info gauge\n"
        out += "sixty_audit_head_info{seq=\"\(head.sequence)\",hash=\"\(head.head)\"} 1\n"
        out +=
          "# HELP sixty_audit_checkpoint_sequence The newest audit record covered by a signed checkpoint (-1: none yet).\n# TYPE sixty_audit_checkpoint_sequence gauge\n"
        out += "sixty_audit_checkpoint_sequence \(checkpoint?.sequence ?? -1)\n"
      }
      return out
    }
  }
}
