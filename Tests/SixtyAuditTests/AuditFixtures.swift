import Foundation

@testable import SixtyAudit

/// Helpers shared by the audit suites: a log in a fresh folder, numbered records, a log's lines.
protocol AuditFixtures {}

extension AuditFixtures {
  func temporaryLog() throws -> (String, () -> Void) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sixty-audit-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return (dir.appendingPathComponent("audit.jsonl").path, { try? FileManager.default.removeItem(at: dir) })
  }

  func record(_ n: Int, outcome: String = "accepted") -> AuditRecord {
    AuditRecord(
      time: Date(timeIntervalSince1970: 1_790_000_000 + Double(n)), event: "push", requestID: "req-\(n)",
      principal: "AKIDEXAMPLE", source: "127.0.0.1", instance: "i-0123456789abcdef0", osUser: "ops",
      fingerprint: "SHA256:abc\(n)", outcome: outcome)
  }

  func lines(_ path: String) throws -> [String] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
  }
}
