/// A fast streaming JSON writer with stable key order, for large plans and reports.
///
/// Callers emit keys in the order they want them printed; output is compact unless `pretty`.
public struct JSONWriter: Sendable {
  public private(set) var bytes: [UInt8] = []
  private var needsComma: [Bool] = [false]
  private let pretty: Bool

  public init(pretty: Bool = false, capacity: Int = 1 << 16) {
    self.pretty = pretty
    bytes.reserveCapacity(capacity)
  }

  public var string: String { String(decoding: bytes, as: UTF8.self) }

  private mutating func newline() {
    guard pretty else { return }
    bytes.append(UInt8(ascii: "\n"))
    for _ in 0..<(needsComma.count - 1) {
      bytes.append(UInt8(ascii: " "))
      bytes.append(UInt8(ascii: " "))
    }
  }

  private mutating func separate() {
    if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
    needsComma[needsComma.count - 1] = true
    if needsComma.count > 1 { newline() }
  }

  public mutating func key(_ key: String) {
    separate()
    appendString(key)
    bytes.append(UInt8(ascii: ":"))
    if pretty { bytes.append(UInt8(ascii: " ")) }
    needsComma[needsComma.count - 1] = false
    pendingValueAfterKey = true
  }

  private var pendingValueAfterKey = false

  private mutating func beginValue() {
    if pendingValueAfterKey {
      pendingValueAfterKey = false
      needsComma[needsComma.count - 1] = true
    } else {
      separate()
    }
  }

  public mutating func beginObject() { open(UInt8(ascii: "{")) }

  public mutating func endObject() { close(UInt8(ascii: "}")) }

  public mutating func beginArray() { open(UInt8(ascii: "[")) }

  public mutating func endArray() { close(UInt8(ascii: "]")) }

  private mutating func open(_ bracket: UInt8) {
    beginValue()
    bytes.append(bracket)
    needsComma.append(false)
  }

  private mutating func close(_ bracket: UInt8) {
    let hadItems = needsComma.removeLast()
    if hadItems { newline() }
    bytes.append(bracket)
  }

  /// `[{…}, …]`: an object for each item, with the fields `fields` writes.
  public mutating func objects<Items: Sequence>(
    _ items: Items, _ fields: (inout JSONWriter, Items.Element) -> Void
  ) {
    beginArray()
    for item in items {
      beginObject()
      fields(&self, item)
      endObject()
    }
    endArray()
  }

  public mutating func value(_ text: String) {
    beginValue()
    appendString(text)
  }

  public mutating func value(_ text: String?) {
    if let text { value(text) } else { null() }
  }

  public mutating func value(_ number: Int) {
    beginValue()
    bytes.append(contentsOf: String(number).utf8)
  }

  public mutating func value(_ number: Double) {
    beginValue()
    if number.isFinite {
      bytes.append(
        contentsOf: (number == number.rounded() && abs(number) < 1e15
          ? String(Int64(number)) : String(number)).utf8)
    } else {
      bytes.append(contentsOf: "null".utf8)
    }
  }

  public mutating func value(_ flag: Bool) {
    beginValue()
    bytes.append(contentsOf: (flag ? "true" : "false").utf8)
  }

  public mutating func null() {
    beginValue()
    bytes.append(contentsOf: "null".utf8)
  }

  /// `"key": value` shorthands.
  public mutating func field(_ name: String, _ text: String?) {
    key(name)
    value(text)
  }

  public mutating func field(_ name: String, _ number: Int) {
    key(name)
    value(number)
  }

  public mutating func field(_ name: String, _ number: Double) {
    key(name)
    value(number)
  }

  public mutating func field(_ name: String, _ flag: Bool) {
    key(name)
    value(flag)
  }

  public mutating func field<Items: Sequence>(
    _ name: String, objects items: Items, _ fields: (inout JSONWriter, Items.Element) -> Void
  ) {
    key(name)
    objects(items, fields)
  }

  public mutating func field(_ name: String, strings: [String]) {
    key(name)
    beginArray()
    for item in strings { value(item) }
    endArray()
  }

  private mutating func appendString(_ text: String) {
    bytes.append(UInt8(ascii: "\""))
    for byte in text.utf8 {
      switch byte {
      case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
      case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
      case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
      case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
      case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
      case 0..<0x20, 0x7F:
        bytes.append(contentsOf: [
          UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
        ])
        bytes.append(Hex.lowercaseDigits[Int(byte >> 4)])
        bytes.append(Hex.lowercaseDigits[Int(byte & 0xF)])
      default: bytes.append(byte)
      }
    }
    bytes.append(UInt8(ascii: "\""))
  }
}
