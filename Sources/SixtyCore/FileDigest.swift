import Crypto
import Foundation

/// Digests of files, as the run history records playbooks.
public enum FileDigest {
  /// SHA-256 of a file's bytes, in lowercase hex ("" if unreadable).
  public static func sha256(ofFile path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    return sha256(data)
  }

  /// SHA-256 of bytes (a playbook held in memory), in lowercase hex.
  public static func sha256(_ data: some DataProtocol) -> String { Hex.lowercase(SHA256.hash(data: data)) }
}
