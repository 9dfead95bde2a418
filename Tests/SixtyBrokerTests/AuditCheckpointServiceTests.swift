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
    chmod(path, 0o600)  // secrets inline
    return path
  }
}

/// Requests that write the audit log wait for its fsync on threads of their own.
@Suite final class AuditOffloadTests {
  /// Records whether each write ran inside a Swift task (on the cooperative pool or an event loop
  /// serving as the executor), where a blocking fsync would stall other requests.
  final class Probe: @unchecked Sendable {
    // `lock` protects `inTask`.
    private let lock = NSLock()
    private var inTask: [Bool] = []
    var writesInsideATask: [Bool] { lock.withLock { inTask } }
    var writer: AuditLog.Writer {
      { fd, bytes in
        let inside = withUnsafeCurrentTask { $0 != nil }
        self.lock.withLock { self.inTask.append(inside) }
        return write(fd, bytes.baseAddress, bytes.count)
      }
    }
  }

  @Test func auditedRequestsRunOffTheAsyncExecutor() async throws {
    let directory =
      FileManager.default.temporaryDirectory.appendingPathComponent("sixty-offload-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let yaml = """
      key_ttl: 60s
      principals:
        deploy: {access_key_id: AKIDOFFLOAD00001, secret: offload-secret-0123456789, hosts: [role=web], users: [ops]}
      hosts:
        i-0000000000000001: {name: web-1, tags: {role: web}, token: agent-token-offload-0123456789}
      """
    try yaml.write(toFile: directory + "/broker.yml", atomically: true, encoding: .utf8)
    chmod(directory + "/broker.yml", 0o600)  // secrets inline
    let config = try #require(BrokerConfig.load(path: directory + "/broker.yml").0)
    let probe = Probe()
    let log = try AuditLog(path: directory + "/audit.jsonl", writer: probe.writer)
    let broker = Broker(config: config, signingKey: Curve25519.Signing.PrivateKey(), audit: log)
    // An agent fetch that is served always writes its record ("no audit record, no keys").
    let fetch = try await BrokerServer.handle(
      BrokerRequest(
        method: "GET", path: "/agent/v1/keys", query: "instance_id=i-0000000000000001&user=ops",
        headers: [("Authorization", "Bearer agent-token-offload-0123456789")], body: [],
        remoteAddress: "127.0.0.1"), broker: broker)
    #expect(fetch.status == 200)
    _ = try await BrokerServer.handle(
      BrokerRequest(method: "POST", path: "/", headers: [], body: [], remoteAddress: "127.0.0.1"),
      broker: broker)
    let writes = probe.writesInsideATask
    #expect(!writes.isEmpty && writes.allSatisfy { !$0 }, "inside a task: \(writes)")
    let health = try await BrokerServer.handle(
      BrokerRequest(method: "GET", path: "/healthz", headers: [], body: [], remoteAddress: nil),
      broker: broker)
    #expect(health.status == 200)
  }
}
