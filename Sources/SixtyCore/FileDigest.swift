import Crypto
import Foundation

/// Digests of files, as the run history records playbooks.
public enum FileDigest {
  /// SHA-256 of a file's bytes, in lowercase hex ("" if unreadable).
  public static func sha256(ofFile path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    return Hex.lowercase(SHA256.hash(data: data))
  }
}
