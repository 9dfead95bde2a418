import Crypto
import Foundation
import Testing

@testable import SixtyAudit

/// A writer that fails on demand, as `write(2)` does on a full disk: it writes `partial` bytes at a
/// time, then fails with ENOSPC once fewer remain, leaving part of the record in the file.
final class FlakyWriter: @unchecked Sendable {
  // `lock` protects `failing`.
  private let lock = NSLock()
  private var failing = false
  let partial: Int
  init(partial: Int) { self.partial = partial }
  func fail(_ on: Bool) { lock.withLock { failing = on } }

  var writer: AuditLog.Writer {
    { fd, bytes in
      guard self.lock.withLock({ self.failing }) else { return write(fd, bytes.baseAddress, bytes.count) }
      if bytes.count > self.partial {
        return write(fd, bytes.baseAddress, self.partial)
      }
      errno = ENOSPC
      return -1
    }
  }
}

@Suite struct AuditHardeningTests: AuditFixtures {
  static let time = Date(timeIntervalSince1970: 1_790_000_100)

  // MARK: 1. Bounded records

  @Test func everyFieldIsBoundedWithAVisibleMarker() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let huge = String(repeating: "A", count: 61440)
    let log = try AuditLog(path: path)
    try log.append(
      AuditRecord(
        time: Self.time, event: huge, requestID: huge, principal: huge, source: huge, instance: huge,
        osUser: huge, fingerprint: huge, outcome: huge, reason: huge))
    // Worst case for escaping: every byte a control character (6 bytes as JSON).
    let controls = String(repeating: "\u{1}", count: 61440)
    try log.append(
      AuditRecord(
        time: Self.time, event: controls, requestID: controls, principal: controls, source: controls,
        instance: controls, osUser: controls, fingerprint: controls, outcome: controls, reason: controls))
    for line in try lines(path) {
      #expect(line.utf8.count < 8192, "a record of \(line.utf8.count) bytes")
      let object = try #require(
        try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
      for key in [
        "event", "request_id", "principal", "source", "instance", "os_user", "fingerprint", "outcome",
        "reason",
      ] {
        let value = try #require(object[key] as? String)
        #expect(value.hasSuffix("…[truncated, 61440 bytes]"), "\(key)")
      }
    }
    #expect(try AuditVerifier.verify(path: path).records == 2)
  }

  @Test func truncationKeepsWholeScalars() {
    // "é" is 2 bytes, "👍" 4: a 5-byte budget keeps two "é" and never half of one.
    #expect(
      AuditRecord.bounded(String(repeating: "é", count: 1000), limit: 5) == "éé…[truncated, 2000 bytes]")
    #expect(AuditRecord.bounded("ab👍cd", limit: 5) == "ab…[truncated, 8 bytes]")
    #expect(AuditRecord.bounded("short", limit: 5) == "short")
    // Escaped size counts: a quote costs 2.
    #expect(AuditRecord.bounded("\"\"\"", limit: 5) == "\"\"…[truncated, 3 bytes]")
  }

  // MARK: 2. Failed writes and incomplete lines

  @Test func failedWriteIsRolledBackAndTheChainContinues() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let flaky = FlakyWriter(partial: 40)
    let log = try AuditLog(path: path, writer: flaky.writer)
    try log.append(record(1))
    try log.append(record(2))
    let before = try Data(contentsOf: URL(fileURLWithPath: path))
    flaky.fail(true)
    #expect {
      try log.append(self.record(3))
    } throws: { error in
      let message = (error as? AuditError)?.message ?? ""
      return message.contains("No space left on device") && message.contains("still ends at record 2")
    }
    // Nothing of the failed record is left.
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
    flaky.fail(false)
    try log.append(record(3))
    let summary = try AuditVerifier.verify(path: path)
    #expect(summary.records == 3)
    #expect(summary.head == log.headHash)
  }

  @Test func incompleteLastLineIsCutOffAtOpening() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    do {
      let log = try AuditLog(path: path)
      try log.append(record(1))
      try log.append(record(2))
    }
    // A crash in the middle of record 3.
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
    try handle.seekToEnd()
    try handle.write(contentsOf: Data(#"{"seq":3,"time":"2026-09-21T14:1"#.utf8))
    try handle.close()
    let log = try AuditLog(path: path)
    let repair = try #require(log.repair)
    #expect(repair.contains("incomplete line") && repair.contains("record 2"), "\(repair)")
    try log.append(record(3))
    #expect(try AuditVerifier.verify(path: path).records == 3)
  }

  @Test func onlyAnIncompleteLineStartsOver() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    try Data(#"{"seq":1,"ti"#.utf8).write(to: URL(fileURLWithPath: path))
    let log = try AuditLog(path: path)
    #expect(log.repair != nil)
    try log.append(record(1))
    #expect(try AuditVerifier.verify(path: path).records == 1)
  }

  @Test func damagedCompleteRecordIsStillRefused() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    do {
      let log = try AuditLog(path: path)
      try log.append(record(1))
      try log.append(record(2))
    }
    var all = try lines(path)
    all[1] = all[1].replacingOccurrences(of: "accepted", with: "refused!")
    try (all.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    #expect {
      try AuditLog(path: path)
    } throws: { error in
      (error as? AuditError)?.message.contains("(line 2) is damaged") == true
    }
  }

  // MARK: 3. Signed checkpoints

  let key = Curve25519.Signing.PrivateKey()

  func checkpointed(_ path: String, records: Int, checkpointAt: Int? = nil) throws {
    let log = try AuditLog(path: path)
    for n in 1...records {
      try log.append(record(n))
      if n == (checkpointAt ?? records) { try log.checkpoint(signingKey: key, time: Self.time) }
    }
  }

  @Test func checkpointIsSignedAtomicAndVerified() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    try checkpointed(path, records: 5, checkpointAt: 3)
    let checkpointPath = AuditLog.checkpointPath(for: path)
    var mode = stat()
    stat(checkpointPath, &mode)
    #expect(mode.st_mode & 0o777 == 0o600)
    #expect(!FileManager.default.fileExists(atPath: checkpointPath + ".tmp"))
    let text = try String(contentsOfFile: checkpointPath, encoding: .utf8)
    #expect(text.hasPrefix(#"{"format":"sixty-audit-checkpoint-v1","seq":3,"head":""#))
    #expect(text.contains(#""time":"2026-09-21T14:15:00.000Z""#))
    let summary = try AuditVerifier.verify(path: path, publicKey: key.publicKey)
    #expect(summary.records == 5)
    #expect(summary.checkpoint?.sequence == 3)
    #expect(summary.signatureChecked)
    // Reopening continues after the checkpointed record.
    let log = try AuditLog(path: path)
    #expect(log.lastCheckpoint?.sequence == 3)
  }

  @Test func truncationAfterACheckpointIsDetected() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    try checkpointed(path, records: 5)
    let all = try lines(path)
    try (all.dropLast(2).joined(separator: "\n") + "\n").write(
      toFile: path, atomically: false, encoding: .utf8)
    #expect {
      try AuditVerifier.verify(path: path, publicKey: key.publicKey)
    } throws: { error in
      let error = error as? AuditError
      return error?.chainBroken == true && error?.message.contains("ends at record 3") == true
        && error?.message.contains("records were removed from its end") == true
    }
    // Without the key the checkpoint is still compared with the log.
    #expect(throws: AuditError.self) { try AuditVerifier.verify(path: path) }
    // And the broker refuses to extend it (a new checkpoint would hide the truncation).
    #expect {
      try AuditLog(path: path)
    } throws: { error in
      (error as? AuditError)?.message.contains("records were removed from its end") == true
    }
  }

  @Test func rewriteWithRecomputedHashesIsDetected() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    try checkpointed(path, records: 4, checkpointAt: 3)
    // The attacker rebuilds the whole log with record 2 changed; the chain itself is intact.
    let forgedPath = path + ".forged"
    do {
      let forged = try AuditLog(path: forgedPath)
      for n in 1...4 { try forged.append(record(n, outcome: n == 2 ? "refused" : "accepted")) }
    }
    #expect(try AuditVerifier.verify(path: forgedPath).records == 4)
    try FileManager.default.removeItem(atPath: path)
    try FileManager.default.moveItem(atPath: forgedPath, toPath: path)
    #expect {
      try AuditVerifier.verify(path: path, publicKey: key.publicKey)
    } throws: { error in
      let error = error as? AuditError
      return error?.chainBroken == true && error?.message.contains("record 3 of the audit log") == true
        && error?.message.contains("was rewritten") == true
    }
    // And the broker refuses to extend it.
    #expect {
      try AuditLog(path: path)
    } throws: { error in
      (error as? AuditError)?.message.contains("the log was rewritten; refusing to extend it") == true
    }
  }

  @Test func forgedCheckpointIsDetected() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    try checkpointed(path, records: 3)
    // Truncate, then sign the new head with another key.
    let all = try lines(path)
    try (all.dropLast().joined(separator: "\n") + "\n").write(
      toFile: path, atomically: false, encoding: .utf8)
    let forgery = Curve25519.Signing.PrivateKey()
    let head = try AuditVerifier.walk(path: path, at: nil).head
    let forged = try AuditCheckpoint.signed(sequence: 2, head: head, time: Self.time, key: forgery)
    try forged.write(to: AuditLog.checkpointPath(for: path))
    // Without a key only the consistency is checked, and the output must say so.
    #expect(try AuditVerifier.verify(path: path).signatureChecked == false)
    #expect {
      try AuditVerifier.verify(path: path, publicKey: key.publicKey)
    } throws: { error in
      let error = error as? AuditError
      return error?.chainBroken == true && error?.message.contains("does not verify") == true
        && error?.message.contains("forged or from another broker") == true
    }
    // A checkpoint whose fields were edited (same key) fails too.
    var edited = try AuditCheckpoint.signed(sequence: 2, head: head, time: Self.time, key: key)
    edited.sequence = 1
    #expect(!edited.isSigned(by: key.publicKey))
  }

  @Test func missingCheckpointFailsWhenAKeyIsPinned() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    do {
      let log = try AuditLog(path: path)
      try log.append(record(1))
    }
    #expect(try AuditVerifier.verify(path: path).checkpoint == nil)
    #expect {
      try AuditVerifier.verify(path: path, publicKey: key.publicKey)
    } throws: { error in
      (error as? AuditError)?.message.contains("its head is not signed") == true
    }
  }

  // MARK: 4. One writer

  @Test func secondWriterIsRefusedWhileTheFirstHoldsTheLog() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    do {
      let first = try AuditLog(path: path)
      try first.append(record(1))
      #expect {
        try AuditLog(path: path)
      } throws: { error in
        let message = (error as? AuditError)?.message ?? ""
        return message.contains("the audit log '\(path)' is in use by another broker (pid \(getpid()))")
      }
      withExtendedLifetime(first) {}
    }
    // Released with the first log.
    let again = try AuditLog(path: path)
    try again.append(record(2))
    #expect(try AuditVerifier.verify(path: path).records == 2)
  }

  // MARK: 5. Terminal-safe output

  @Test func showEscapesControlAndBidiCharacters() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let log = try AuditLog(path: path)
    var hostile = record(1, outcome: "refused")
    hostile.principal = "evil\u{1b}[2K\rpush accepted\nfake\u{202e}txt.exe\u{9b}31m\u{2028}x\u{7f}\\"
    hostile.reason = "\u{2066}isolated\u{2069}"
    try log.append(hostile)
    let shown = try AuditVerifier.show(path: path)
    #expect(shown.count == 1)
    let line = try #require(shown.first)
    #expect(
      line.contains(
        #"principal=evil\x1b[2K\x0dpush accepted\x0afake\u{202e}txt.exe\x9b31m\u{2028}x\x7f\\ "#),
      "\(line)")
    #expect(line.hasSuffix(#"reason: \u{2066}isolated\u{2069}"#))
    let dangerous = line.unicodeScalars.filter {
      $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x2028...0x202E).contains($0.value)
        || (0x2066...0x2069).contains($0.value)
    }
    #expect(dangerous.isEmpty)
  }
}
