import Foundation
import Testing

@testable import SixtyAudit

@Suite struct AuditLogTests: AuditFixtures {
  func write(_ lines: [String], to path: String) throws {
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
  }

  @Test func chainVerifiesAndContinuesAcrossReopen() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    do {
      let log = try AuditLog(path: path)
      for n in 1...3 { try log.append(record(n)) }
    }
    let log = try AuditLog(path: path)
    try log.append(record(4, outcome: "refused"))
    let summary = try AuditVerifier.verify(path: path)
    #expect(summary.records == 4)
    #expect(summary.head == log.headHash)
    let first = try lines(path)[0]
    #expect(first.hasPrefix(#"{"seq":1,"time":"2026-09-21T14:13:21.000Z","prev":"0000000000000000"#))
    var mode = stat()
    stat(path, &mode)
    #expect(mode.st_mode & 0o777 == 0o600)
  }

  @Test func editedRecordIsNamed() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let log = try AuditLog(path: path)
    for n in 1...4 { try log.append(record(n)) }
    var all = try lines(path)
    all[2] = all[2].replacingOccurrences(of: "\"accepted\"", with: "\"refused\"")
    try write(all, to: path)
    #expect {
      try AuditVerifier.verify(path: path)
    } throws: { error in
      (error as? AuditError)?.line == 3
        && (error as? AuditError)?.message == "line 3 was modified: its content does not match its hash."
    }
  }

  @Test func deletedRecordIsNamed() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let log = try AuditLog(path: path)
    for n in 1...4 { try log.append(record(n)) }
    var all = try lines(path)
    all.remove(at: 1)
    try write(all, to: path)
    #expect {
      try AuditVerifier.verify(path: path)
    } throws: { error in
      (error as? AuditError)?.line == 2
        && (error as? AuditError)?.message.contains("a record was removed, inserted or reordered here")
          == true
    }
  }

  @Test func reorderedRecordsAreNamed() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let log = try AuditLog(path: path)
    for n in 1...4 { try log.append(record(n)) }
    var all = try lines(path)
    all.swapAt(1, 2)
    try write(all, to: path)
    #expect(throws: AuditError.self) { try AuditVerifier.verify(path: path) }
    do {
      _ = try AuditVerifier.verify(path: path)
    } catch let error as AuditError {
      #expect(error.line == 2)
    }
  }

  @Test func recomputedHashOfAnEditStillBreaksTheChain() throws {
    // An attacker who rewrites a record and fixes its own hash still breaks the next record's 'prev'.
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    do {
      let log = try AuditLog(path: path)
      try log.append(record(1))
    }
    let forgedPath = path + ".forged"
    do {
      let forged = try AuditLog(path: forgedPath)
      try forged.append(record(1, outcome: "refused"))
    }
    let forgedLine = try lines(forgedPath)[0]
    let log = try AuditLog(path: path)
    try log.append(record(2))
    var all = try lines(path)
    all[0] = forgedLine
    try write(all, to: path)
    do {
      _ = try AuditVerifier.verify(path: path)
      Issue.record("expected a broken chain")
    } catch let error as AuditError {
      #expect(error.line == 2)
    }
  }

  @Test func damagedTailIsNotExtended() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    do {
      let log = try AuditLog(path: path)
      try log.append(record(1))
    }
    try "garbage\n".write(toFile: path, atomically: false, encoding: .utf8)
    #expect(throws: AuditError.self) { try AuditLog(path: path) }
  }

  @Test func concurrentAppendsStayLinear() async throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let log = try AuditLog(path: path)
    await withTaskGroup(of: Void.self) { group in
      for n in 1...200 { group.addTask { _ = try? log.append(self.record(n)) } }
    }
    #expect(try AuditVerifier.verify(path: path).records == 200)
    // Every append returned only once a flush covered it; concurrent ones may share a flush.
    let durability = log.durability
    #expect(durability.through == 200)
    #expect((1...200).contains(durability.flushes))
  }

  @Test func showIsReadable() throws {
    let (path, cleanup) = try temporaryLog()
    defer { cleanup() }
    let log = try AuditLog(path: path)
    var refused = record(1, outcome: "refused")
    refused.reason = "InvalidArgsException: options prefix"
    try log.append(refused)
    #expect(
      try AuditVerifier.show(path: path) == [
        "2026-09-21T14:13:21.000Z  #1  push refused  principal=AKIDEXAMPLE source=127.0.0.1 instance=i-0123456789abcdef0 user=ops key=SHA256:abc1 request=req-1  reason: InvalidArgsException: options prefix"
      ])
  }

  @Test func anUnchainedBodyChainsToTheSameLineAsTheRecord() throws {
    let records = [
      record(1),
      AuditRecord(
        time: Date(timeIntervalSince1970: 1_800_000_000.123_456), event: "certificate", requestID: "r\"q",
        principal: "p\\x", source: "::1", instance: "i-1", osUser: "ops", fingerprint: "SHA256:x",
        outcome: "accepted", reason: "prev \",\"prev\":\"\", é \u{0301}"),
    ]
    for record in records {
      for (sequence, previous) in [(1, AuditLog.genesis), (987_654, String(repeating: "ab", count: 32))] {
        let expected = record.chained(sequence: sequence, previous: previous)
        let spliced = try #require(
          AuditRecord.chain(unchained: record.unchained, sequence: sequence, previous: previous))
        #expect(spliced.line == expected.line && spliced.hash == expected.hash)
      }
    }
    #expect(AuditRecord.chain(unchained: "{\"seq\":1}", sequence: 1, previous: "x") == nil)
    #expect(AuditRecord.chain(unchained: "not json", sequence: 1, previous: "x") == nil)
  }
}
