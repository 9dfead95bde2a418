import FuzzDriver
import SixtyCore
import SixtyPlaybook

/// Reads `bytes` as one POSIX shell word, as `sh` does: unquoted bytes that need no quoting,
/// `'…'` spans and `\`-escaped bytes. Nil when the shell would see anything else (a space, `$`,
/// a backquote, an unclosed quote…): a second word or syntax.
func readWord(_ bytes: [UInt8]) -> [UInt8]? {
  var value: [UInt8] = []
  var i = 0
  while i < bytes.count {
    let byte = bytes[i]
    if byte == UInt8(ascii: "'") {
      guard let close = bytes[(i + 1)...].firstIndex(of: UInt8(ascii: "'")) else { return nil }
      value += bytes[(i + 1)..<close]
      i = close + 1
    } else if byte == UInt8(ascii: "\\") {
      guard i + 1 < bytes.count else { return nil }
      value.append(bytes[i + 1])
      i += 2
    } else if byte < 0x80 && (byte.isLetterOrDigit || "-_./:=@%+,".utf8.contains(byte)) {
      value.append(byte)
      i += 1
    } else {
      return nil
    }
  }
  return value
}

extension UInt8 {
  var isLetterOrDigit: Bool {
    (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self)
      || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
      || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
  }
}

/// libFuzzer target: any text through `ShellQuote.quote` reads back, as one shell word, as
/// exactly its bytes; text for a terminal (`SafeText.quoted`) holds no control or bidi scalar;
/// an accepted address or user name holds no byte a shell or ssh would read as syntax.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQuote(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  let quoted = ShellQuote.quote(text)
  let word = readWord(Array(quoted.utf8))
  precondition(word != nil, "the quoted text is not one shell word: \(quoted.debugDescription)")
  precondition(
    word! == Array(text.utf8), "the quoted text reads back differently: \(quoted.debugDescription)")
  precondition(!text.isEmpty || quoted == "''", "the empty string must be quoted")

  let shown = SafeText.quoted(text, limit: 64)
  precondition(
    !shown.unicodeScalars.contains(where: SafeText.needsEscape), "a control or bidi scalar is shown raw")

  let metacharacters = Array(" \t\n\r'\"\\$`;&|<>()*?!#~{}".utf8)
  if SafeText.isHostAddress(text) {
    precondition(!text.utf8.contains(where: { metacharacters.contains($0) || $0 >= 0x80 }), "unsafe address")
    precondition(text.utf8.first != UInt8(ascii: "-"), "an address with a leading '-' is accepted")
  }
  if SafeText.isUserName(text) {
    // A final '$' is allowed (machine accounts, as Instance Connect allows); nothing else.
    let body = text.utf8.last == UInt8(ascii: "$") ? Array(text.utf8.dropLast()) : Array(text.utf8)
    precondition(!body.contains(where: { metacharacters.contains($0) || $0 >= 0x80 }), "unsafe user name")
    precondition(text.utf8.first != UInt8(ascii: "-"), "a user name with a leading '-' is accepted")
  }
  return 0
}

@_cdecl("fuzz_quote_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  runLibFuzzer(argc, argv) { data, size in data.map { fuzzQuote($0, size) } ?? 0 }
}
