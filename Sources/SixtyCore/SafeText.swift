/// Checks for strings that reach ssh's command line, checked on UTF-8 bytes.
///
/// Never on Swift `Character`s: `$` followed by a combining mark is one `Character` that is not
/// `$`, yet every shell and ssh reads its first byte as `$`.
public enum SafeText {
  /// A host name or IP address that ssh takes as its destination and nothing reads as an option,
  /// a second argument or shell syntax: 1 to 255 ASCII letters, digits, `.`, `-`, `_`, `:` and
  /// (for IPv6 literals and zones) `[`, `]`, `%`, not starting with `-`.
  public static func isHostAddress(_ text: String) -> Bool {
    let bytes = text.utf8
    guard (1...255).contains(bytes.count), bytes.first != UInt8(ascii: "-") else { return false }
    return bytes.allSatisfy { byte in
      isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        || byte == UInt8(ascii: "_")
        || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "]")
        || byte == UInt8(ascii: "%")
    }
  }

  /// A login name for ssh's `-l` and Instance Connect: 1 to 32 ASCII letters, digits, `.`, `_`,
  /// `-` and `@`, not starting with `-`, with `$` allowed only at the end (machine accounts).
  public static func isUserName(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    guard (1...32).contains(bytes.count), bytes[0] != UInt8(ascii: "-") else { return false }
    for (offset, byte) in bytes.enumerated() {
      if isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
        || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "@")
      {
        continue
      }
      if byte == UInt8(ascii: "$") && offset == bytes.count - 1 && offset > 0 { continue }
      return false
    }
    return true
  }

  /// An environment variable name: ASCII letters, digits and `_`, not starting with a digit.
  public static func isEnvironmentName(_ text: String) -> Bool {
    let bytes = text.utf8
    guard let first = bytes.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
      return false
    }
    return bytes.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") }
  }

  /// An ASCII letter or digit.
  @inline(__always) public static func isAlphanumeric(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
      || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
      || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
  }
}

extension SafeText {
  /// `text` in single quotes for a message on a terminal or in a log: control characters
  /// (C0, DEL, C1), bidirectional overrides and isolates, and line and paragraph separators
  /// are written as `\u{…}` escapes (so no input can move the cursor, forge a line or reorder
  /// what is shown), a quote or backslash is escaped, and past `limit` Unicode scalars the rest
  /// is cut with a visible count.
  public static func quoted(_ text: String, limit: Int = 120) -> String {
    "'" + escaped(text, limit: limit) + "'"
  }

  /// `text` with the escapes of `quoted(_:limit:)`, without the quotes.
  public static func escaped(_ text: String, limit: Int = 120) -> String {
    var output = ""
    var count = 0
    var scalars = text.unicodeScalars.makeIterator()
    while let scalar = scalars.next() {
      if count == limit {
        var rest = 1
        while scalars.next() != nil { rest += 1 }
        output += "…[\(rest) more characters]"
        break
      }
      count += 1
      switch scalar.value {
      case 0x5C: output += "\\\\"
      case 0x27: output += "\\'"
      case 0x09: output += "\\t"
      case 0x0A: output += "\\n"
      case 0x0D: output += "\\r"
      case _ where needsEscape(scalar):
        output += "\\u{" + String(scalar.value, radix: 16) + "}"
      default: output.unicodeScalars.append(scalar)
      }
    }
    return output
  }

  /// Scalars that change how a terminal shows what follows them.
  public static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.value {
    case 0x00...0x1F, 0x7F...0x9F: return true  // C0, DEL, C1 (ESC, CSI, …)
    case 0x200E, 0x200F, 0x061C: return true  // directional marks
    case 0x202A...0x202E, 0x2066...0x2069: return true  // bidi embeddings, overrides, isolates
    case 0x2028, 0x2029: return true  // line and paragraph separators
    default: return false
    }
  }
}
