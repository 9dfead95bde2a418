import Crypto
import Foundation
import Logging
import SixtyAudit
import Testing

@testable import SixtyBroker

/// The broker's checkpoint writer, driven by a test clock, and the audit head in /metrics.
@Suite final class AuditCheckpointServiceTests {
  let directory: String
  let signingKey = Curve25519.Signing.PrivateKey()
  let start = Date(timeIntervalSince1970: 1_795_000_000)

  init() throws {
    directory =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-checkpoint-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  }

  deinit { try? FileManager.default.removeItem(atPath: directory) }

  func record(_ n: Int) -> AuditRecord {
    AuditRecord(
      time: start, event: "push", requestID: "req-\(n)", principal: "AKID", source: "127.0.0.1",
      instance: "i-1", osUser: "ops", fingerprint: nil, outcome: "accepted")
  }

  @Test func checkpointsEveryIntervalEveryNRecordsAndAtShutdown() throws {
    let log = try AuditLog(path: directory + "/audit.jsonl")
    let service = AuditCheckpointService(
      log: log, signingKey: signingKey, interval: 10, everyRecords: 5, logger: Logger(label: "test"))
    // At start: the empty log gets its checkpoint (record 0), so one always exists.
    #expect(service.step(now: start)?.sequence == 0)
    #expect(service.step(now: start.addingTimeInterval(20)) == nil, "nothing was added")
    for n in 1...2 { try log.append(record(n)) }
    #expect(service.step(now: start.addingTimeInterval(21))?.sequence == 2, "added, and 10 s passed")
    try log.append(record(3))
    #expect(service.step(now: start.addingTimeInterval(30)) == nil, "the interval has not passed")
    #expect(service.step(now: start.addingTimeInterval(31))?.sequence == 3)
    for n in 4...8 { try log.append(record(n)) }
    #expect(service.step(now: start.addingTimeInterval(32))?.sequence == 8, "five records were added")
    try log.append(record(9))
    // Graceful shutdown forces the last one.
    #expect(service.step(now: start.addingTimeInterval(33), force: true)?.sequence == 9)
    #expect(service.step(now: start.addingTimeInterval(34), force: true) == nil)
    let summary = try AuditVerifier.verify(path: log.path, publicKey: signingKey.publicKey)
    #expect(summary.checkpoint?.sequence == 9)
    #expect(summary.checkpoint?.time == "2026-11-18T11:07:13.000Z")
  }

  @Test func metricsShowTheAuditHead() throws {
    let config = try #require(BrokerConfig.load(path: writeConfig()).0)
    let log = try AuditLog(path: directory + "/audit.jsonl")
    let broker = Broker(config: config, signingKey: signingKey, audit: log, clock: { [start] in start })
    for n in 1...3 { try log.append(record(n)) }
    try log.checkpoint(signingKey: signingKey, time: start)
    try log.append(record(4))
    let text = String(
      decoding: broker.handle(
        BrokerRequest(method: "GET", path: "/metrics", headers: [], body: [], remoteAddress: nil)
      ).body, as: UTF8.self)
    #expect(text.contains("\nsixty_audit_sequence 4\n"))
    #expect(text.contains("\nsixty_audit_head_info{seq=\"4\",hash=\"\(log.headHash)\"} 1\n"))
    #expect(text.contains("\nsixty_audit_checkpoint_sequence 3\n"))
  }

  func writeConfig() throws -> String {
    let path = directory + "/broker.yml"
    let yaml = """
      key_ttl: 60s
      principals:
        deploy: {access_key_id: AKIDCHECKPOINT01, secret: checkpoint-secret-0123456789, hosts: [role=web], users: [ops]}
      """
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }
}
