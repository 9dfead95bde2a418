import Crypto
import Foundation
import SixtyCore

/// Checks an audit log's chain and reads its records.
public enum AuditVerifier {
  public struct Summary: Sendable {
    public var records: Int
    public var head: String
    /// The checkpoint found beside the log, which the chain agrees with (nil: none).
    public var checkpoint: AuditCheckpoint?
    /// Whether the checkpoint's signature was checked against a pinned public key (false when
    /// no key was given: the checkpoint could then be forged along with the log).
    public var signatureChecked = false
  }

  struct Parsed {
    var hash: String
    var sequence: Int
    var object: [String: Any]
  }

  /// Verifies every line of the log at `path`, then the checkpoint beside it.
  ///
  /// - Parameters:
  ///   - publicKey: the broker's pinned public key. With it, a checkpoint must exist and its
  ///     signature must verify; without it, a checkpoint is only compared with the log.
  ///   - checkpointPath: where the checkpoint is (default: `AuditLog.checkpointPath(for: path)`).
  /// - Returns: the number of records, the head hash and the checkpoint the log agrees with.
  /// - Throws: `AuditError` naming the first bad line and what is wrong with it, or saying how the
  ///   log contradicts its checkpoint.
  public static func verify(
    path: String, publicKey: Curve25519.Signing.PublicKey? = nil, checkpointPath: String? = nil
  ) throws -> Summary {
    let checkpointPath = checkpointPath ?? AuditLog.checkpointPath(for: path)
    let checkpoint = try AuditCheckpoint.read(path: checkpointPath)
    if let publicKey {
      guard let checkpoint else {
        throw AuditError(
          message:
            "there is no checkpoint '\(checkpointPath)' for the audit log '\(path)': its head is not signed, so records removed from its end or a rewrite with recomputed hashes would go unnoticed. The broker writes one while it runs and when it stops.",
          line: nil, chainBroken: true)
      }
      guard checkpoint.isSigned(by: publicKey) else {
        let other =
          checkpoint.publicKey == publicKey.rawRepresentation.base64EncodedString()
          ? "" : " (it names another key, \(escaped(String(checkpoint.publicKey.prefix(64)))))"
        throw AuditError(
          message:
            "the signature of the checkpoint '\(checkpointPath)' does not verify with the broker public key \(publicKey.rawRepresentation.base64EncodedString())\(other): the checkpoint is forged or from another broker.",
          line: nil, chainBroken: true)
      }
    }
    let summary = try walk(path: path, at: checkpoint?.sequence)
    if let checkpoint {
      let signed =
        "its checkpoint '\(checkpointPath)' was signed at record \(checkpoint.sequence) at \(escaped(checkpoint.time))"
      guard checkpoint.sequence <= summary.records else {
        throw AuditError(
          message:
            "the audit log '\(path)' ends at record \(summary.records), but \(signed): records were removed from its end.",
          line: nil, chainBroken: true)
      }
      let hash = checkpoint.sequence == 0 ? AuditLog.genesis : summary.hashAtCheckpoint
      guard hash == checkpoint.head else {
        throw AuditError(
          message:
            "record \(checkpoint.sequence) of the audit log '\(path)' has hash \(hash?.prefix(12) ?? "?")…, but \(signed) with hash \(checkpoint.head.prefix(12))…: the log was rewritten up to there.",
          line: nil, chainBroken: true)
      }
    }
    return Summary(
      records: summary.records, head: summary.head, checkpoint: checkpoint, signatureChecked: publicKey != nil
    )
  }

  /// The hash of record `sequence` of the log at `path` (the chain is checked up to the end).
  static func hash(path: String, at sequence: Int) throws -> String? {
    try walk(path: path, at: sequence).hashAtCheckpoint
  }

  static func walk(path: String, at wanted: Int?) throws -> (
    records: Int, head: String, hashAtCheckpoint: String?
  ) {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw AuditError(message: "cannot read the audit log '\(path)'.", line: nil)
    }
    var previous = AuditLog.genesis
    var sequence = 0
    var number = 0
    var found: String?
    let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    for line in lines {
      number += 1
      if line.isEmpty {
        if number == lines.count { break }
        throw AuditError(message: "line \(number) is empty; expected a record.", line: number)
      }
      switch check(line: Array(line), number: number, previous: previous, sequence: sequence + 1) {
      case .success(let parsed):
        previous = parsed.hash
        sequence = parsed.sequence
        if sequence == wanted { found = parsed.hash }
      case .failure(let error): throw error
      }
    }
    return (sequence, previous, found)
  }

  static func check(line: [UInt8], number: Int, previous: String?, sequence: Int?) -> Result<
    Parsed, AuditError
  > {
    func broken(_ message: String) -> Result<Parsed, AuditError> {
      .failure(AuditError(message: message, line: number))
    }
    let marker = Array(",\"hash\":\"".utf8)
    // A record ends with `,"hash":"` + 64 hex digits + `"}`.
    let suffix = marker.count + 64 + 2
    guard line.count > suffix, line.last == UInt8(ascii: "}"),
      Array(line[(line.count - suffix)..<(line.count - 66)]) == marker
    else {
      return broken("line \(number) does not end with a record hash.")
    }
    let bodyEnd = line.count - suffix
    let stored = String(decoding: line[(bodyEnd + marker.count)..<(line.count - 2)], as: UTF8.self)
    var body = Array(line[..<bodyEnd])
    body.append(UInt8(ascii: "}"))
    let computed = AuditLog.hash(body)
    guard computed == stored else {
      return broken("line \(number) was modified: its content does not match its hash.")
    }
    guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any],
      let prev = object["prev"] as? String, let seq = object["seq"] as? Int
    else {
      return broken("line \(number) is not a valid audit record.")
    }
    if let previous, prev != previous {
      return broken(
        "line \(number) does not follow the record before it (its 'prev' is \(escaped(String(String.UnicodeScalarView(prev.unicodeScalars.prefix(12)))))…, expected \(previous.prefix(12))…): a record was removed, inserted or reordered here."
      )
    }
    if let sequence, seq != sequence {
      return broken(
        "line \(number) has sequence number \(seq), expected \(sequence): records were removed or reordered.")
    }
    return .success(Parsed(hash: computed, sequence: seq, object: object))
  }

  /// The records of a log as readable lines, oldest first (the chain is not checked; use `verify`).
  public static func show(path: String) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw AuditError(message: "cannot read the audit log '\(path)'.", line: nil)
    }
    var lines: [String] = []
    for (index, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
      guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
        lines.append("line \(index + 1): (not a record)")
        continue
      }
      func field(_ key: String) -> String { (object[key] as? String).map(escaped) ?? "-" }
      var text = "\(field("time"))  #\(object["seq"] as? Int ?? 0)  \(field("event")) \(field("outcome"))"
      text += "  principal=\(field("principal")) source=\(field("source")) instance=\(field("instance"))"
      text += " user=\(field("os_user")) key=\(field("fingerprint")) request=\(field("request_id"))"
      if let reason = object["reason"] as? String { text += "  reason: \(escaped(reason))" }
      lines.append(text)
    }
    return lines
  }

  /// `text` safe to print on a terminal: C0 controls, DEL and C1 controls (U+0080–U+009F) become
  /// `\xNN`, bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the
  /// line and paragraph separators (U+2028, U+2029) become `\u{NNNN}`, and `\` becomes `\\`, so
  /// a record cannot move the cursor, erase or recolour lines, start a new line or reorder the
  /// text around it. Works on Unicode scalars.
  public static func escaped(_ text: String) -> String {
    var out = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
      switch scalar.value {
      case 0x5C:
        out.append(contentsOf: "\\\\".unicodeScalars)
      case 0..<0x20, 0x7F...0x9F:
        let hex = String(scalar.value, radix: 16)
        out.append(contentsOf: ("\\x" + (hex.count < 2 ? "0" : "") + hex).unicodeScalars)
      case _ where SafeText.needsEscape(scalar):  // bidi controls, line and paragraph separators
        out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
      default:
        out.append(scalar)
      }
    }
    return String(out)
  }
}
