extension String {
  /// Whether the text starts with `prefix`, compared on Unicode scalars: `-` followed by a
  /// combining mark is an option to a command, though as a `Character` it is not `-`.
  func hasScalarPrefix(_ prefix: String) -> Bool { unicodeScalars.starts(with: prefix.unicodeScalars) }

  /// Whether the text ends with `suffix`, compared on Unicode scalars.
  func hasScalarSuffix(_ suffix: String) -> Bool {
    unicodeScalars.reversed().starts(with: suffix.unicodeScalars.reversed())
  }

  /// The text without its first `count` Unicode scalars.
  func droppingScalars(_ count: Int) -> String { String(unicodeScalars.dropFirst(count)) }
}
