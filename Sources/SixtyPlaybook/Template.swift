import SixtyCore

/// A string with `{{ expression }}` placeholders, parsed once and rendered per host.
///
/// An expression is a dotted variable path or a quoted string, followed by filters:
/// `{{ version }}`, `{{ host.tags.role | upper }}`, `{{ path | default('/srv') | quote }}`.
public struct Template: Hashable, Sendable, CustomStringConvertible {
  public enum Filter: Hashable, Sendable {
    case defaultValue(String)
    case quote
    case upper
    case lower
    case join(String)
  }

  public struct Expression: Hashable, Sendable {
    public var path: [String]
    public var literal: String?
    public var filters: [Filter]
    public var location: SourceLocation
    public var text: String
  }

  public enum Segment: Hashable, Sendable {
    case literal(String)
    case expression(Expression)
  }

  public var segments: [Segment]
  public var source: String
  public var location: SourceLocation

  public var description: String { source }
  public var isConstant: Bool { !segments.contains { if case .expression = $0 { true } else { false } } }

  /// A template with no placeholders.
  public init(constant text: String, at location: SourceLocation) {
    self.segments = text.isEmpty ? [] : [.literal(text)]
    self.source = text
    self.location = location
  }

  /// Parses the scalar `node`; problems are added to `reader` and an unusable template returns nil.
  public init?(node: YAMLNode, reader: inout NodeReader) {
    guard case .scalar(let text, _) = node.content else { return nil }
    self.source = text
    self.location = node.location
    self.segments = []
    var rest = Substring(text)
    var offset = 0
    while let open = rest.range(of: "{{") {
      let literal = rest[..<open.lowerBound]
      if !literal.isEmpty { segments.append(.literal(String(literal))) }
      offset += literal.count
      let exprStart = offset
      let afterOpen = rest[open.upperBound...]
      guard let close = afterOpen.range(of: "}}") else {
        reader.error(
          "'{{' is never closed in \"\(Template.excerpt(text))\"; expected '{{ name }}'.",
          at: node.location(ofCharacter: exprStart))
        return nil
      }
      let inner = String(afterOpen[..<close.lowerBound])
      let location = node.location(ofCharacter: exprStart)
      switch Template.parseExpression(inner, location: location) {
      case .success(let expression): segments.append(.expression(expression))
      case .failure(let problem):
        reader.error(problem.message, at: location)
        return nil
      }
      offset += 2 + inner.count + 2
      rest = afterOpen[close.upperBound...]
    }
    if !rest.isEmpty { segments.append(.literal(String(rest))) }
  }

  struct Problem: Error {
    var message: String
  }

  static func excerpt(_ text: String) -> String {
    text.count > 60 ? String(text.prefix(57)) + "..." : text
  }

  static func parseExpression(_ inner: String, location: SourceLocation) -> Result<Expression, Problem> {
    let parts = splitFilters(inner)
    let head = parts[0].trimmingWhitespace()
    var expression = Expression(
      path: [], literal: nil, filters: [], location: location, text: inner.trimmingWhitespace())
    if head.isEmpty {
      return .failure(
        Problem(
          message: "the placeholder '{{\(inner)}}' is empty; expected a variable name like '{{ version }}'."))
    }
    if let literal = stringLiteral(head) {
      expression.literal = literal
    } else {
      let path = head.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
      guard path.allSatisfy(isIdentifier) else {
        return .failure(
          Problem(
            message:
              "'\(head)' is not a variable name; expected names made of letters, digits and '_' joined by dots, like 'host.tags.role'."
          ))
      }
      expression.path = path
    }
    // Where each filter starts in `inner`, in characters: the parts and their '|' make it up.
    var partOffset = parts[0].count + 1
    for raw in parts.dropFirst() {
      defer { partOffset += raw.count + 1 }
      let filter = raw.trimmingWhitespace()
      var name = filter
      var argument: String?
      if let open = filter.firstIndex(of: "("), !filter.hasSuffix(")") {
        // The column of the '(': after '{{', the filters before, and this one's leading blanks.
        let leading = raw.prefix { $0 == " " || $0 == "\t" }.count
        let column =
          location.column + 2 + partOffset + leading + filter.distance(from: filter.startIndex, to: open)
        return .failure(
          Problem(
            message:
              "unclosed '(' opened at column \(column) in the filter '\(filter)'; expected ')' after its argument, like \(filter[..<open])('x')."
          ))
      }
      if let open = filter.firstIndex(of: "("), filter.hasSuffix(")") {
        name = String(filter[..<open]).trimmingWhitespace()
        let argText = String(filter[filter.index(after: open)..<filter.index(before: filter.endIndex)])
          .trimmingWhitespace()
        argument = stringLiteral(argText) ?? (argText.isEmpty ? nil : argText)
      }
      switch (name, argument) {
      case ("default", let value?): expression.filters.append(.defaultValue(value))
      case ("quote", nil): expression.filters.append(.quote)
      case ("upper", nil): expression.filters.append(.upper)
      case ("lower", nil): expression.filters.append(.lower)
      case ("join", let separator?): expression.filters.append(.join(separator))
      case ("default", nil), ("join", nil):
        return .failure(Problem(message: "the filter '\(name)' needs an argument, like \(name)('x')."))
      default:
        let known = ["default", "quote", "upper", "lower", "join"]
        return .failure(
          Problem(
            message:
              "unknown filter '\(name)'\(Suggestion.hint(for: name, in: known)); expected one of: \(known.joined(separator: ", "))."
          ))
      }
    }
    return .success(expression)
  }

  static func splitFilters(_ text: String) -> [String] {
    var parts: [String] = []
    var current = ""
    var quote: Character?
    for c in text {
      if let q = quote {
        current.append(c)
        if c == q { quote = nil }
      } else if c == "'" || c == "\"" {
        quote = c
        current.append(c)
      } else if c == "|" {
        parts.append(current)
        current = ""
      } else {
        current.append(c)
      }
    }
    parts.append(current)
    return parts
  }

  static func stringLiteral(_ text: String) -> String? {
    guard text.count >= 2, let first = text.first, first == "'" || first == "\"", text.last == first else {
      return nil
    }
    return String(text.dropFirst().dropLast())
  }

  static func isIdentifier(_ text: String) -> Bool {
    guard let first = text.unicodeScalars.first, first == "_" || first.properties.isAlphabetic else {
      return (!text.isEmpty && text.allSatisfy(\.isNumber))  // list index like items.0
    }
    return text.unicodeScalars.allSatisfy {
      $0 == "_" || $0 == "-" || $0.properties.isAlphabetic || ("0"..."9").contains($0)
    }
  }

  /// A variable a template could not find for a host.
  public struct Unresolved: Error, Hashable, Sendable {
    public var expression: Expression
  }

  /// Renders the template for one host's scope.
  /// - Throws: `Unresolved` for the first variable that is not defined and has no default.
  public func render(in scope: VariableScope) throws(Unresolved) -> String {
    if segments.count == 1, case .literal(let text) = segments[0] { return text }
    var output = ""
    for segment in segments {
      switch segment {
      case .literal(let text): output += text
      case .expression(let expression):
        output += try Template.evaluate(expression, in: scope)
      }
    }
    return output
  }

  static func evaluate(_ expression: Expression, in scope: VariableScope) throws(Unresolved) -> String {
    var value: Value? = expression.literal.map(Value.string) ?? scope.lookup(expression.path)
    var text: String? = nil
    for filter in expression.filters {
      switch filter {
      case .defaultValue(let fallback):
        if value == nil || value == .string("") { value = .string(fallback) }
      case .join(let separator):
        if case .list(let items)? = value {
          value = .string(items.map(\.description).joined(separator: separator))
        }
      case .quote, .upper, .lower:
        guard let current = value else { throw Unresolved(expression: expression) }
        let rendered = text ?? current.description
        switch filter {
        case .quote: text = ShellQuote.quote(rendered)
        case .upper: text = rendered.uppercased()
        default: text = rendered.lowercased()
        }
        value = .string(text!)
      }
    }
    guard let value else { throw Unresolved(expression: expression) }
    return value.description
  }
}

/// POSIX shell quoting, on UTF-8 bytes.
///
/// Quoting works on bytes, never on Swift `Character`s: a `'` followed by a combining mark
/// (U+0301), a zero-width joiner, a variation selector or an emoji modifier is one `Character`
/// that compares unequal to `'`, yet the shell reads its first byte as a quote. Every shell
/// byte that matters is ASCII, and no byte of a multi-byte UTF-8 sequence is ASCII, so byte by
/// byte is exactly how `sh` sees the text.
public enum ShellQuote {
  /// `text` as one shell word: unchanged when every byte is safe, otherwise in single quotes
  /// with each `'` written as `'\''`.
  public static func quote(_ text: String) -> String {
    let bytes = text.utf8
    if !bytes.isEmpty, bytes.allSatisfy(isSafe) { return text }
    var quoted: [UInt8] = []
    quoted.reserveCapacity(bytes.count + 2)
    quoted.append(UInt8(ascii: "'"))
    for byte in bytes {
      if byte == UInt8(ascii: "'") {
        quoted.append(contentsOf: [
          UInt8(ascii: "'"), UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "'"),
        ])
      } else {
        quoted.append(byte)
      }
    }
    quoted.append(UInt8(ascii: "'"))
    return String(decoding: quoted, as: UTF8.self)
  }

  /// Bytes that never need quoting in a POSIX shell word.
  @inline(__always) static func isSafe(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"):
      return true
    case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: ":"),
      UInt8(ascii: "="), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "+"), UInt8(ascii: ","):
      return true
    default:
      return false
    }
  }
}
