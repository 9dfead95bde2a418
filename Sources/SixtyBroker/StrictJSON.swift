/// A strict JSON reader for request bodies (RFC 8259), on bytes.
///
/// Unlike `JSONSerialization` and `JSONDecoder`, which keep one of two equal keys without a word,
/// it refuses an object that names a key twice: the key the broker acts on must be the one every
/// log, proxy and firewall in front of it saw. It also refuses invalid UTF-8, unpaired surrogate
/// escapes, control characters in strings, nesting deeper than `maxDepth` and trailing bytes.
enum StrictJSON {
  indirect enum Value: Equatable {
    case object([(key: String, value: Value)])
    case array([Value])
    case string(String)
    /// The number's text as sent.
    case number(String)
    case bool(Bool)
    case null

    static func == (a: Value, b: Value) -> Bool {
      switch (a, b) {
      case (.object(let x), .object(let y)):
        x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
      case (.array(let x), .array(let y)): x == y
      case (.string(let x), .string(let y)): x == y
      case (.number(let x), .number(let y)): x == y
      case (.bool(let x), .bool(let y)): x == y
      case (.null, .null): true
      default: false
      }
    }
  }

  enum Failure: Error, Equatable {
    /// The text is not JSON; `what` says where, in words.
    case syntax(String)
    /// An object names `key` twice (keys compared after unescaping).
    case duplicateKey(String)
  }

  static func parse(_ bytes: [UInt8], maxDepth: Int = 16) throws(Failure) -> Value {
    var reader = Reader(bytes: bytes, maxDepth: maxDepth)
    reader.skipSpace()
    let value = try reader.value(depth: 0)
    reader.skipSpace()
    guard reader.index == bytes.count else {
      throw .syntax("unexpected bytes after the value at byte \(reader.index)")
    }
    return value
  }

  struct Reader {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0

    init(bytes: [UInt8], maxDepth: Int) {
      self.bytes = bytes
      self.maxDepth = maxDepth
    }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipSpace() {
      while let b = peek, b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D { index += 1 }
    }

    mutating func expect(_ byte: UInt8) throws(Failure) {
      guard peek == byte else {
        throw .syntax("expected '\(Character(Unicode.Scalar(byte)))' at byte \(index)")
      }
      index += 1
    }

    mutating func value(depth: Int) throws(Failure) -> Value {
      guard depth < maxDepth else { throw .syntax("nesting deeper than \(maxDepth) levels") }
      switch peek {
      case UInt8(ascii: "{"): return try object(depth: depth)
      case UInt8(ascii: "["): return try array(depth: depth)
      case UInt8(ascii: "\""): return .string(try string())
      case UInt8(ascii: "t"): return try literal("true", .bool(true))
      case UInt8(ascii: "f"): return try literal("false", .bool(false))
      case UInt8(ascii: "n"): return try literal("null", .null)
      case let b? where b == UInt8(ascii: "-") || (b >= 0x30 && b <= 0x39): return try number()
      case nil: throw .syntax("the text ends where a value was expected")
      default: throw .syntax("unexpected byte at \(index) where a value was expected")
      }
    }

    mutating func literal(_ word: String, _ value: Value) throws(Failure) -> Value {
      for b in word.utf8 { try expect(b) }
      return value
    }

    mutating func object(depth: Int) throws(Failure) -> Value {
      try expect(UInt8(ascii: "{"))
      var members: [(key: String, value: Value)] = []
      // Swift `String` equality is canonical equivalence, so two spellings of one key that a
      // dictionary would merge count as the same key here too.
      var seen: Set<String> = []
      try elements(closedBy: UInt8(ascii: "}")) { reader throws(Failure) in
        guard reader.peek == UInt8(ascii: "\"") else {
          throw .syntax("expected a string key at byte \(reader.index)")
        }
        let key = try reader.string()
        guard seen.insert(key).inserted else { throw .duplicateKey(key) }
        reader.skipSpace()
        try reader.expect(UInt8(ascii: ":"))
        reader.skipSpace()
        members.append((key, try reader.value(depth: depth + 1)))
      }
      return .object(members)
    }

    mutating func array(depth: Int) throws(Failure) -> Value {
      try expect(UInt8(ascii: "["))
      var items: [Value] = []
      try elements(closedBy: UInt8(ascii: "]")) { reader throws(Failure) in
        items.append(try reader.value(depth: depth + 1))
      }
      return .array(items)
    }

    /// After an opening bracket: `element`s separated by commas up to `close`, or none.
    mutating func elements(closedBy close: UInt8, _ element: (inout Reader) throws(Failure) -> Void)
      throws(Failure)
    {
      skipSpace()
      if peek == close {
        index += 1
        return
      }
      while true {
        skipSpace()
        try element(&self)
        skipSpace()
        if peek == UInt8(ascii: ",") {
          index += 1
          continue
        }
        try expect(close)
        return
      }
    }

    mutating func hex4() throws(Failure) -> UInt32 {
      guard index + 4 <= bytes.count else { throw .syntax("a \\u escape ends early at byte \(index)") }
      var value: UInt32 = 0
      for b in bytes[index..<index + 4] {
        let digit: UInt32
        switch b {
        case 0x30...0x39: digit = UInt32(b - 0x30)
        case 0x41...0x46: digit = UInt32(b - 0x41 + 10)
        case 0x61...0x66: digit = UInt32(b - 0x61 + 10)
        default: throw .syntax("a \\u escape has a non-hex digit at byte \(index)")
        }
        value = value * 16 + digit
      }
      index += 4
      return value
    }

    mutating func string() throws(Failure) -> String {
      let start = index
      try expect(UInt8(ascii: "\""))
      var out: [UInt8] = []
      while true {
        guard let b = peek else { throw .syntax("a string starting at byte \(start) is not closed") }
        index += 1
        switch b {
        case UInt8(ascii: "\""):
          guard let text = String(validating: out, as: UTF8.self) else {
            throw .syntax("the string starting at byte \(start) is not valid UTF-8")
          }
          return text
        case UInt8(ascii: "\\"):
          guard let e = peek else { throw .syntax("an escape ends the text at byte \(index)") }
          index += 1
          switch e {
          case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
          case UInt8(ascii: "b"): out.append(0x08)
          case UInt8(ascii: "f"): out.append(0x0C)
          case UInt8(ascii: "n"): out.append(0x0A)
          case UInt8(ascii: "r"): out.append(0x0D)
          case UInt8(ascii: "t"): out.append(0x09)
          case UInt8(ascii: "u"):
            var code = try hex4()
            if (0xD800...0xDBFF).contains(code) {
              guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
              else { throw .syntax("an unpaired surrogate escape at byte \(index - 6)") }
              index += 2
              let low = try hex4()
              guard (0xDC00...0xDFFF).contains(low) else {
                throw .syntax("an unpaired surrogate escape at byte \(index - 12)")
              }
              code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(code) {
              throw .syntax("an unpaired surrogate escape at byte \(index - 6)")
            }
            guard let scalar = Unicode.Scalar(code) else { throw .syntax("an invalid \\u escape") }
            out.append(contentsOf: Array(String(scalar).utf8))
          default: throw .syntax("an unknown escape at byte \(index - 2)")
          }
        case 0x00..<0x20:
          throw .syntax("a control character inside a string at byte \(index - 1)")
        default:
          out.append(b)
        }
      }
    }

    mutating func number() throws(Failure) -> Value {
      let start = index
      func digits() -> Int {
        var n = 0
        while let b = peek, b >= 0x30 && b <= 0x39 {
          index += 1
          n += 1
        }
        return n
      }
      if peek == UInt8(ascii: "-") { index += 1 }
      if peek == UInt8(ascii: "0") {
        index += 1
      } else if digits() == 0 {
        throw .syntax("a number without digits at byte \(start)")
      }
      if peek == UInt8(ascii: ".") {
        index += 1
        guard digits() > 0 else { throw .syntax("a number without digits after '.' at byte \(start)") }
      }
      if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
        index += 1
        if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
        guard digits() > 0 else { throw .syntax("a number without exponent digits at byte \(start)") }
      }
      return .number(String(decoding: bytes[start..<index], as: UTF8.self))
    }
  }
}
