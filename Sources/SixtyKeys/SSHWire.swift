import Foundation

/// The SSH wire encodings (RFC 4251): `string`, `uint32` and `mpint`.
struct SSHWriter {
  var bytes: [UInt8] = []

  mutating func uint32(_ value: UInt32) {
    bytes.append(contentsOf: [
      UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF),
    ])
  }

  mutating func string(_ data: some Collection<UInt8>) {
    uint32(UInt32(data.count))
    bytes.append(contentsOf: data)
  }

  mutating func string(_ text: String) { string(Array(text.utf8)) }

  /// An unsigned big-endian integer as an mpint: no leading zeros, and a zero byte in front
  /// when the high bit is set.
  mutating func mpint(_ magnitude: [UInt8]) {
    var trimmed = Array(magnitude.drop { $0 == 0 })
    if let first = trimmed.first, first & 0x80 != 0 { trimmed.insert(0, at: 0) }
    string(trimmed)
  }
}

struct SSHReader {
  let bytes: [UInt8]
  var offset = 0

  init(_ bytes: [UInt8]) { self.bytes = bytes }

  var isAtEnd: Bool { offset == bytes.count }
  var remaining: Int { bytes.count - offset }

  mutating func uint32() -> UInt32? {
    guard remaining >= 4 else { return nil }
    defer { offset += 4 }
    return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
      | UInt32(bytes[offset + 3])
  }

  mutating func string() -> [UInt8]? {
    guard let length = uint32(), Int(length) <= remaining else { return nil }
    defer { offset += Int(length) }
    return Array(bytes[offset..<(offset + Int(length))])
  }

  /// An mpint that must be positive and minimally encoded.
  mutating func positiveMPInt() -> [UInt8]? {
    guard let value = string(), let first = value.first else { return nil }
    if first & 0x80 != 0 { return nil }  // negative
    if first == 0 && (value.count == 1 || value[1] & 0x80 == 0) { return nil }  // not minimal
    return first == 0 ? Array(value.dropFirst()) : value
  }
}

/// A minimal DER reader for the integers of an RSA private key.
enum DER {
  /// The INTEGERs of `RSAPrivateKey` (PKCS #1), also when wrapped in PKCS #8.
  static func rsaPrivateKeyIntegers(_ der: [UInt8]) -> [[UInt8]]? {
    guard var outer = sequence(der, at: 0) else { return nil }
    var items: [(tag: UInt8, value: ArraySlice<UInt8>)] = []
    while let item = next(&outer) { items.append(item) }
    // PKCS #8: INTEGER 0, SEQUENCE algorithm, OCTET STRING privateKey.
    if items.count >= 3, items[0].tag == 0x02, items[1].tag == 0x30, items[2].tag == 0x04 {
      return rsaPrivateKeyIntegers(Array(items[2].value))
    }
    guard items.count >= 9, items.prefix(9).allSatisfy({ $0.tag == 0x02 }) else { return nil }
    return items.prefix(9).map { Array($0.value.drop { $0 == 0 }) }
  }

  static func sequence(_ bytes: [UInt8], at index: Int) -> ArraySlice<UInt8>? {
    var slice = bytes[...]
    guard let item = next(&slice), item.tag == 0x30 else { return nil }
    return item.value
  }

  static func next(_ slice: inout ArraySlice<UInt8>) -> (tag: UInt8, value: ArraySlice<UInt8>)? {
    guard slice.count >= 2 else { return nil }
    let tag = slice[slice.startIndex]
    var index = slice.startIndex + 1
    var length = Int(slice[index])
    index += 1
    if length & 0x80 != 0 {
      let count = length & 0x7F
      guard count >= 1, count <= 4, slice.endIndex - index >= count else { return nil }
      length = 0
      for _ in 0..<count {
        length = length << 8 | Int(slice[index])
        index += 1
      }
    }
    guard slice.endIndex - index >= length else { return nil }
    let value = slice[index..<(index + length)]
    slice = slice[(index + length)...]
    return (tag, value)
  }
}
