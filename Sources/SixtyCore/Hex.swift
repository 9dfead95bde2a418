/// Lowercase hexadecimal, as digests are shown (audit hashes, JSON escapes).
public enum Hex {
  public static let lowercaseDigits: [UInt8] = Array("0123456789abcdef".utf8)

  /// Two lowercase hex digits per byte.
  public static func lowercase<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
      out.append(lowercaseDigits[Int(byte >> 4)])
      out.append(lowercaseDigits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
  }
}
