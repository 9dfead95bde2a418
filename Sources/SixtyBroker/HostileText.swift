/// Text from the network, made safe to quote in an answer or a log: bounded and escaped.
enum HostileText {
  /// `text` with printable ASCII kept and every other Unicode scalar (and `\`) escaped as
  /// `\u{…}`, cut after `limit` bytes of output with a note of the original size.
  ///
  /// Works on Unicode scalars, never `Character`s: one `Character` can hold any number of
  /// combining scalars, so a `Character` prefix is not a bound.
  static func excerpt(_ text: String, limit: Int = 64) -> String {
    var out = ""
    var truncated = false
    for scalar in text.unicodeScalars {
      let piece: String
      if scalar.value >= 0x20 && scalar.value < 0x7F && scalar != "\\" {
        piece = String(scalar)
      } else {
        piece = "\\u{" + String(scalar.value, radix: 16) + "}"
      }
      if out.utf8.count + piece.utf8.count > limit {
        truncated = true
        break
      }
      out += piece
    }
    if truncated { out += "… (\(text.utf8.count) bytes)" }
    return out
  }
}
