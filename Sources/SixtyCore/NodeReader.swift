/// Typed access to `YAMLNode`s that records a positioned diagnostic for every mismatch.
///
/// Readers never throw: they return nil for a bad value and keep going, so one pass reports
/// every problem in a file at once.
public struct NodeReader: Sendable {
  public var diagnostics = DiagnosticBag()

  public init() {}

  /// Reads a loaded document with `parse`, after the loader's own diagnostics. The value is nil
  /// when anything is an error, or when the document is empty: then `empty` is the diagnostic,
  /// unless the loader said why.
  public static func read<Value>(
    _ loaded: (YAMLNode?, [Diagnostic]), empty: @autoclosure () -> Diagnostic,
    _ parse: (YAMLNode, inout NodeReader) -> Value?
  ) -> (Value?, [Diagnostic]) {
    let (root, diagnostics) = loaded
    guard let root else { return (nil, diagnostics.isEmpty ? [empty()] : diagnostics) }
    var reader = NodeReader()
    reader.diagnostics.append(contentsOf: diagnostics)
    let value = parse(root, &reader)
    return (reader.diagnostics.hasErrors ? nil : value, reader.diagnostics.all)
  }

  public mutating func error(_ message: String, at location: SourceLocation?, kind: Diagnostic.Kind = .input)
  {
    diagnostics.error(message, at: location, kind: kind)
  }

  public mutating func warning(_ message: String, at location: SourceLocation?) {
    diagnostics.warning(message, at: location)
  }

  /// The pairs of a mapping, reporting unknown keys (with a suggestion) and a non-mapping value.
  public mutating func mapping(_ node: YAMLNode, _ what: String, allowed: [String]? = nil) -> [YAMLPair]? {
    guard let pairs = node.pairs else {
      error("expected a mapping for \(what), found \(node.kindDescription).", at: node.location)
      return nil
    }
    if let allowed {
      for pair in pairs where !allowed.contains(pair.key) {
        error(
          "unknown key '\(pair.key)' in \(what)\(Suggestion.hint(for: pair.key, in: allowed)); expected one of: \(allowed.joined(separator: ", ")).",
          at: pair.keyLocation)
      }
    }
    return pairs
  }

  /// The items of a sequence; a single mapping or scalar counts as a one-item list.
  public mutating func sequence(_ node: YAMLNode, _ what: String) -> [YAMLNode]? {
    switch node.content {
    case .sequence(let items): return items
    case .mapping: return [node]
    case .scalar:
      error("expected a list for \(what), found \(node.kindDescription).", at: node.location)
      return nil
    }
  }

  public mutating func string(_ node: YAMLNode, _ what: String, allowEmpty: Bool = false) -> String? {
    guard case .scalar(let text, _) = node.content, !node.isNull || (allowEmpty && !text.isEmpty) else {
      error("expected a string for \(what), found \(node.kindDescription).", at: node.location)
      return nil
    }
    if !allowEmpty && text.isEmpty {
      error("expected a non-empty string for \(what).", at: node.location)
      return nil
    }
    return text
  }

  /// A string that `convert` turns into a value; when it does not, the error `rejected(text)`
  /// at the node. Nil when the node is not a string or is rejected.
  public mutating func string<Value>(
    _ node: YAMLNode, _ what: String, as convert: (String) -> Value?, else rejected: (String) -> String
  ) -> Value? {
    guard let text = string(node, what) else { return nil }
    guard let value = convert(text) else {
      error(rejected(text), at: node.location)
      return nil
    }
    return value
  }

  /// A string that `isValid` accepts; else the error `rejected(text)` at the node.
  public mutating func string(
    _ node: YAMLNode, _ what: String, where isValid: (String) -> Bool, else rejected: (String) -> String
  ) -> String? {
    string(node, what, as: { isValid($0) ? $0 : nil }, else: rejected)
  }

  /// The items of a sequence (a single value is not one); else "expected a list of `items` for
  /// `what`".
  public mutating func list(_ node: YAMLNode, of items: String, for what: String) -> [YAMLNode]? {
    guard let nodes = node.items else {
      error("expected a list of \(items) for \(what), found \(node.kindDescription).", at: node.location)
      return nil
    }
    return nodes
  }

  /// Whether `name` is not in `seen` yet; it is then recorded there at `location`. Else the error
  /// `repeated(where it was first)` at `location`.
  public mutating func isFirst(
    _ name: String, at location: SourceLocation, in seen: inout [String: SourceLocation],
    else repeated: (SourceLocation) -> String
  ) -> Bool {
    if let first = seen[name] {
      error(repeated(first), at: location)
      return false
    }
    seen[name] = location
    return true
  }

  public mutating func int(_ node: YAMLNode, _ what: String, range: ClosedRange<Int>? = nil) -> Int? {
    guard case .scalar(let text, _) = node.content, let value = Int(text.trimmingWhitespace()) else {
      let found = node.scalar.map { "'\($0)'" } ?? node.kindDescription
      error("expected a whole number for \(what), found \(found).", at: node.location)
      return nil
    }
    if let range, !range.contains(value) {
      error(
        "\(what) is \(value); expected a number from \(range.lowerBound) to \(range.upperBound).",
        at: node.location)
      return nil
    }
    return value
  }

  public mutating func bool(_ node: YAMLNode, _ what: String) -> Bool? {
    if case .scalar(let text, _) = node.content {
      switch text.lowercased() {
      case "true", "yes", "on": return true
      case "false", "no", "off": return false
      default: break
      }
    }
    let found = node.scalar.map { "'\($0)'" } ?? node.kindDescription
    error("expected true or false for \(what), found \(found).", at: node.location)
    return nil
  }

  public mutating func timeSpan(_ node: YAMLNode, _ what: String) -> TimeSpan? {
    guard case .scalar(let text, _) = node.content, let span = TimeSpan(parsing: text) else {
      let found = node.scalar.map { "'\($0)'" } ?? node.kindDescription
      error(
        "expected a length of time for \(what) (like 30s, 10m, 1h30m or a number of seconds), found \(found).",
        at: node.location)
      return nil
    }
    return span
  }

  /// A list of strings; a single string is accepted as a one-element list when `single` is true.
  public mutating func stringList(_ node: YAMLNode, _ what: String, single: Bool = true) -> [(
    String, SourceLocation
  )]? {
    if single, case .scalar = node.content, !node.isNull {
      return string(node, what).map { [($0, node.location)] }
    }
    guard let items = list(node, of: "strings", for: what) else { return nil }
    var result: [(String, SourceLocation)] = []
    for item in items {
      if let text = string(item, "each entry of \(what)") { result.append((text, item.location)) }
    }
    return result
  }

  /// A mapping of string keys to scalar values, keeping file order.
  public mutating func stringMap(_ node: YAMLNode, _ what: String) -> [(
    key: String, value: String, location: SourceLocation
  )]? {
    guard let pairs = mapping(node, what) else { return nil }
    var result: [(key: String, value: String, location: SourceLocation)] = []
    for pair in pairs {
      guard case .scalar(let text, _) = pair.value.content else {
        error(
          "expected a plain value for '\(pair.key)' in \(what), found \(pair.value.kindDescription).",
          at: pair.value.location)
        continue
      }
      result.append((pair.key, pair.value.isNull ? "" : text, pair.value.location))
    }
    return result
  }
}
