// Small text helpers, so the agent needs only FoundationEssentials (which has no
// `trimmingCharacters(in:)` or `CharacterSet`): a start of `sixty-agent` then maps, relocates and
// initialises far less code than with the whole of Foundation.

extension StringProtocol {
  /// Without leading and trailing whitespace: spaces and tabs (Unicode's horizontal spaces), and
  /// also line breaks when `newlines` is true.
  func trimmingSpace(newlines: Bool = false) -> String {
    let drop: (Character) -> Bool = { $0.isWhitespace && (newlines || !$0.isNewline) }
    guard let first = firstIndex(where: { !drop($0) }), let last = lastIndex(where: { !drop($0) }) else {
      return ""
    }
    return String(self[first...last])
  }
}

extension Array where Element == String {
  /// The elements with `separator` between them. The standard library's `joined(separator:)`
  /// first asks at run time whether the sequence is a `[String]`, and in the static agent that
  /// first question scans every protocol conformance in the program (2 % of a key fetch).
  func concatenated(separator: String) -> String {
    var out = ""
    for (index, part) in enumerated() {
      if index > 0 { out += separator }
      out += part
    }
    return out
  }
}

private let upperHexDigits = Array("0123456789ABCDEF".unicodeScalars)

extension String {
  /// Percent-encoded for a URL query value: RFC 3986's unreserved characters stay, every other
  /// byte of the UTF-8 becomes %XX.
  var percentEncodedForQuery: String {
    var out = ""
    for byte in utf8 {
      switch byte {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
        UInt8(ascii: "~"):
        out.unicodeScalars.append(Unicode.Scalar(byte))
      default:
        out.unicodeScalars.append("%")
        out.unicodeScalars.append(upperHexDigits[Int(byte >> 4)])
        out.unicodeScalars.append(upperHexDigits[Int(byte & 0x0F)])
      }
    }
    return out
  }
}

/// `text` in single quotes for a message: printable ASCII as it is (a quote or backslash
/// escaped), every other Unicode scalar as `\u{…}`, so no input can move the cursor, forge a log
/// line or pass a look-alike letter as ASCII; past 80 scalars the rest is cut with "…".
func quotedForMessage(_ text: String) -> String {
  var out = "'"
  for (index, scalar) in text.unicodeScalars.enumerated() {
    if index == 80 {
      out += "…"
      break
    }
    switch scalar.value {
    case 0x27, 0x5C:
      out.unicodeScalars.append("\\")
      out.unicodeScalars.append(scalar)
    case 0x20..<0x7F: out.unicodeScalars.append(scalar)
    default: out += "\\u{" + String(scalar.value, radix: 16) + "}"
    }
  }
  return out + "'"
}
