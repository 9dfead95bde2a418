#if canImport(FoundationEssentials)
  import FoundationEssentials
#else
  import Foundation
#endif
#if canImport(Glibc)
  import Glibc
#endif

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is a /32 or /128.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
  public let bytes: [UInt8]
  public let prefix: Int

  public init?(_ text: String) {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let address = CIDR.parseAddress(String(parts[0])) else { return nil }
    let maxPrefix = address.count * 8
    if parts.count == 2 {
      guard let prefix = Int(parts[1]), (0...maxPrefix).contains(prefix), !parts[1].hasPrefix("+") else {
        return nil
      }
      self.prefix = prefix
    } else {
      self.prefix = maxPrefix
    }
    bytes = address
  }

  /// The canonical text, as written into `from="…"`.
  public var description: String {
    let address: String
    if bytes.count == 4 {
      address = bytes.map(String.init).joined(separator: ".")
    } else {
      var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
      var raw = in6_addr()
      withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
      inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
      address = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    return prefix == bytes.count * 8 ? address : "\(address)/\(prefix)"
  }

  /// Whether `address` (text) lies inside this network.
  public func contains(_ address: String) -> Bool {
    guard var other = CIDR.parseAddress(address) else { return false }
    // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match IPv4 networks.
    if bytes.count == 4, other.count == 16, other[0..<10].allSatisfy({ $0 == 0 }), other[10] == 0xFF,
      other[11] == 0xFF
    {
      other = Array(other[12...])
    }
    guard other.count == bytes.count else { return false }
    var remaining = prefix
    for i in 0..<bytes.count where remaining > 0 {
      let bits = min(8, remaining)
      let mask: UInt8 = bits == 8 ? 0xFF : ~(0xFF >> UInt8(bits))
      if bytes[i] & mask != other[i] & mask { return false }
      remaining -= bits
    }
    return true
  }

  /// The bytes of an IPv4 or IPv6 address in text form; nil for anything else (a host name).
  public static func parseAddress(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
  }
}
