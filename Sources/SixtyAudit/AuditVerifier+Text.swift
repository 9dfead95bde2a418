import Crypto
import Foundation

extension AuditVerifier.Summary {
  /// What was verified, and what was not, as `sixty audit verify` prints it after the file name.
  public func text(file: String) -> String {
    let count = "\(records) record\(records == 1 ? "" : "s")"
    var text = "ok, \(count), chain intact, head \(head)"
    guard let checkpoint else {
      return text
        + "; head NOT signed: there is no checkpoint \(AuditLog.checkpointPath(for: file)), so records removed from the end or a rewrite with recomputed hashes would go unnoticed."
    }
    let time = AuditVerifier.escaped(checkpoint.time)
    if signatureChecked {
      text += "; head signed at record \(checkpoint.sequence) at \(time) (signature verified)"
    } else {
      text +=
        "; checkpoint at record \(checkpoint.sequence) (\(time)) matches, but its signature was NOT checked (pass --public-key or --broker-config), so a rewrite with a forged checkpoint would go unnoticed"
    }
    let after = records - checkpoint.sequence
    if after > 0 {
      text +=
        "; the last \(after) record\(after == 1 ? " is" : "s are") after it and not covered by a signature."
    } else {
      text += "."
    }
    return text
  }
}

extension AuditVerifier {
  /// The broker's public key from `--public-key`: base64 of the 32 raw bytes, or a file holding it.
  /// - Throws: `AuditError` (not chain-broken) naming what was given and what was expected.
  public static func publicKey(argument: String) throws -> Curve25519.Signing.PublicKey {
    var text = argument
    if FileManager.default.fileExists(atPath: argument) {
      guard let contents = try? String(contentsOfFile: argument, encoding: .utf8) else {
        throw AuditError(message: "cannot read the public key file \(argument).", line: nil)
      }
      text = contents
    }
    guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
      let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    else {
      throw AuditError(
        message:
          "--public-key '\(argument)' is neither a base64 Ed25519 public key (32 bytes, as `sixty broker public-key` prints) nor a file holding one.",
        line: nil)
    }
    return key
  }
}
