/// A YAML node with its source location: the parsed form every Sixty file reader walks.
///
/// Aliases are expanded while converting from Yams under a node budget, so a document that
/// expands exponentially ("billion laughs") is rejected instead of exhausting memory.
public struct YAMLNode: Sendable {
  public enum Content: Sendable {
    /// A scalar with its text; `plain` is false for quoted and block scalars.
    case scalar(String, plain: Bool)
    case mapping([YAMLPair])
    case sequence([YAMLNode])
  }

  /// How a scalar was written; decides how offsets inside it map back to columns.
  public enum Style: Sendable {
    case plain, singleQuoted, doubleQuoted, literal, folded
  }

  public var content: Content
  public var location: SourceLocation
  public var style: Style
  /// For block scalars, the indentation (in columns) of their content lines.
  public var blockIndent: Int

  public init(_ content: Content, at location: SourceLocation, style: Style = .plain, blockIndent: Int = 0) {
    self.content = content
    self.location = location
    self.style = style
    self.blockIndent = blockIndent
  }

  /// The source position of the character `offset` characters into this scalar's value.
  ///
  /// Exact for plain, quoted (without escapes) and block scalars, which covers templates.
  public func location(ofCharacter offset: Int) -> SourceLocation {
    guard case .scalar(let text, _) = content else { return location }
    switch style {
    case .plain:
      return location.advanced(by: offset)
    case .singleQuoted, .doubleQuoted:
      return location.advanced(by: offset + 1)
    case .literal, .folded:
      let prefix = text.prefix(offset)
      let newlines = prefix.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
      let column =
        prefix.count
        - (prefix.lastIndex(of: "\n").map { prefix.distance(from: prefix.startIndex, to: $0) + 1 } ?? 0)
      return SourceLocation(
        file: location.file, line: location.line + 1 + newlines, column: blockIndent + 1 + column)
    }
  }

  /// A YAML null: an empty or `~`/`null` plain scalar.
  public var isNull: Bool {
    if case .scalar(let text, let plain) = content, plain {
      return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }
    return false
  }

  /// A short noun for messages: "a string", "a mapping", "a list", "null".
  public var kindDescription: String {
    switch content {
    case .scalar: isNull ? "nothing (null)" : "a scalar"
    case .mapping: "a mapping"
    case .sequence: "a list"
    }
  }

  public var scalar: String? {
    if case .scalar(let text, _) = content { return text }
    return nil
  }

  public var pairs: [YAMLPair]? {
    if case .mapping(let pairs) = content { return pairs }
    return nil
  }

  public var items: [YAMLNode]? {
    if case .sequence(let items) = content { return items }
    return nil
  }

  /// The value for `key` in a mapping.
  public subscript(key: String) -> YAMLNode? {
    pairs?.first { $0.key == key }?.value
  }
}

/// One `key: value` entry of a mapping; keys are always scalars in Sixty files.
public struct YAMLPair: Sendable {
  public var key: String
  public var keyLocation: SourceLocation
  public var value: YAMLNode
}
