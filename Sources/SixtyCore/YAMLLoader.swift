import Foundation
import Yams

/// Reads YAML files into `YAMLNode` trees, turning every failure into positioned diagnostics.
public enum YAMLLoader {
  /// Bounds that keep hostile files from exhausting the machine.
  public struct Limits: Sendable {
    public var maxBytes: Int
    public var maxNodes: Int
    public var maxDepth: Int

    public init(maxBytes: Int = 64 << 20, maxNodes: Int = 5_000_000, maxDepth: Int = 64) {
      self.maxBytes = maxBytes
      self.maxNodes = maxNodes
      self.maxDepth = maxDepth
    }

    public static let `default` = Limits()
  }

  /// Loads and parses the file at `path`.
  /// - Parameters:
  ///   - path: the file to read.
  ///   - displayPath: the name used in diagnostics (defaults to `path`).
  /// - Returns: the root node (nil for an empty document or on error) and the diagnostics found.
  public static func load(path: String, displayPath: String? = nil, limits: Limits = .default)
    -> (YAMLNode?, [Diagnostic])
  {
    let name = displayPath ?? path
    guard let handle = FileHandle(forReadingAtPath: path) else {
      let reason = FileManager.default.fileExists(atPath: path) ? "it is not readable" : "it does not exist"
      return (nil, [.error("cannot read '\(path)': \(reason).", at: nil)])
    }
    defer { try? handle.close() }
    let data: Data
    do {
      data = try handle.read(upToCount: limits.maxBytes + 1) ?? Data()
    } catch {
      return (nil, [.error("cannot read '\(path)': \(error.localizedDescription)", at: nil)])
    }
    if data.count > limits.maxBytes {
      return (
        nil,
        [
          .error(
            "the file is larger than \(limits.maxBytes >= 1 << 20 ? "\(limits.maxBytes >> 20) MiB" : "\(limits.maxBytes) bytes"); expected a playbook, inventory or policy of reasonable size.",
            at: SourceLocation(file: name, line: 1, column: 1))
        ]
      )
    }
    return parse(data: data, file: name, limits: limits)
  }

  /// Parses YAML bytes that claim to come from `file`.
  public static func parse(data: Data, file: String, limits: Limits = .default) -> (YAMLNode?, [Diagnostic]) {
    guard let text = String(validating: data, as: UTF8.self) else {
      let (line, column) = firstInvalidUTF8(in: data)
      return (
        nil,
        [
          .error(
            "the file is not valid UTF-8 (first bad byte here); expected UTF-8 text.",
            at: SourceLocation(file: file, line: line, column: column))
        ]
      )
    }
    return parse(text: text, file: file, limits: limits)
  }

  /// Parses YAML text that claims to come from `file`.
  public static func parse(text: String, file: String, limits: Limits = .default) -> (YAMLNode?, [Diagnostic])
  {
    if text.utf8.contains(0) {
      let offset =
        text.utf8.firstIndex(of: 0).map { text.utf8.distance(from: text.utf8.startIndex, to: $0) } ?? 0
      let (line, column) = position(ofByte: offset, in: Array(text.utf8))
      return (
        nil,
        [
          .error(
            "the file contains a NUL byte; expected YAML text.",
            at: SourceLocation(file: file, line: line, column: column))
        ]
      )
    }
    let root: Node?
    do {
      // The basic resolver skips Yams' per-scalar regular expressions: Sixty types scalars by context.
      let parser = try Parser(yaml: text, resolver: .basic)
      root = try parser.singleRoot()
    } catch let error as YamlError {
      return (nil, [diagnostic(for: error, text: text, file: file)])
    } catch {
      return (
        nil, [.error("cannot parse YAML: \(error)", at: SourceLocation(file: file, line: 1, column: 1))]
      )
    }
    guard let root else { return (nil, []) }
    var converter = Converter(file: file, limits: limits, text: text)
    do {
      let node = try converter.convert(root, depth: 0)
      return (node, converter.diagnostics)
    } catch let failure as Converter.Failure {
      return (nil, converter.diagnostics + [failure.diagnostic])
    } catch {
      return (nil, [.error("cannot read YAML: \(error)", at: SourceLocation(file: file, line: 1, column: 1))])
    }
  }

  // MARK: - Yams errors

  static func diagnostic(for error: YamlError, text: String, file: String) -> Diagnostic {
    func at(_ mark: Mark) -> SourceLocation {
      SourceLocation(file: file, line: max(1, mark.line), column: max(1, mark.column))
    }
    switch error {
    case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
      let location = at(mark)
      if lineHasTabIndentation(text, line: location.line) || problem.contains("tab") {
        return .error(
          "a tab character is used for indentation; YAML requires spaces.",
          at: tabLocation(text, line: location.line, file: file) ?? location)
      }
      // `key: {{ x }} and more`, or `{{ x }}` inside a flow collection: the braces start a flow
      // mapping, which the rest of the line breaks.
      let lines = [location.line, context.map { at($0.mark).line }].compactMap { $0 }
      for line in lines {
        if let column = unquotedTemplateColumn(text, line: line) {
          return .error(
            "invalid YAML: \(problem); a '{{' that starts a value is read by YAML as a mapping: quote the whole value, like \"{{ name }} …\".",
            at: SourceLocation(file: file, line: line, column: column))
        }
      }
      return .error("invalid YAML: \(problem).", at: location)
    case .composer(_, let problem, let mark, _):
      return .error("invalid YAML: \(problem).", at: at(mark))
    case .reader(let problem, let offset, _, _):
      let (line, column) = position(ofByte: offset ?? 0, in: Array(text.utf8))
      return .error(
        "invalid YAML input: \(problem).", at: SourceLocation(file: file, line: line, column: column))
    case .duplicatedKeysInMapping(let duplicates, let context):
      let key = duplicates.first ?? "?"
      let first = at(context.mark)
      let second = secondOccurrence(of: key, after: first, in: text, file: file) ?? first
      return .error(
        "duplicate key '\(key)' in this mapping (first given at line \(first.line), column \(first.column)); expected each key once.",
        at: second)
    default:
      return .error("cannot parse YAML: \(error)", at: SourceLocation(file: file, line: 1, column: 1))
    }
  }

  /// Yams reports a duplicate key at its first occurrence; find the repeated one to point at it.
  static func secondOccurrence(of key: String, after first: SourceLocation, in text: String, file: String)
    -> SourceLocation?
  {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard first.line >= 1, first.line <= lines.count else { return nil }
    let candidates = [key + ":", "\"\(key)\":", "'\(key)':"]
    // Block style: the same column on a later line, stopping when the mapping's indentation ends.
    for index in first.line..<lines.count {
      let line = Array(lines[index].utf8)
      let indent = line.prefix { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "-") }.count
      let content = String(decoding: line.dropFirst(first.column - 1), as: UTF8.self)
      if indent == first.column - 1, candidates.contains(where: { content.hasPrefix($0) }) {
        return SourceLocation(file: file, line: index + 1, column: first.column)
      }
      let leading = line.prefix { $0 == UInt8(ascii: " ") }.count
      let blank =
        line.allSatisfy { $0 == UInt8(ascii: " ") } || line.dropFirst(leading).first == UInt8(ascii: "#")
      if !blank && leading < first.column - 1 && line.dropFirst(leading).first != UInt8(ascii: "-") { break }
    }
    // Flow style: a later occurrence on the same line.
    let line = String(lines[first.line - 1])
    let utf8 = Array(line.utf8)
    if first.column < utf8.count {
      let rest = String(decoding: utf8[first.column...], as: UTF8.self)
      for candidate in candidates {
        if let range = rest.range(of: candidate) {
          let offset = rest.utf8.distance(from: rest.startIndex, to: range.lowerBound)
          return SourceLocation(file: file, line: first.line, column: first.column + 1 + offset)
        }
      }
    }
    return nil
  }

  /// The column (in Unicode scalars, as YAML marks count) of the first `{{` on `line` (1-based)
  /// outside quotes and comments, if any. Read on bytes: every byte that matters is ASCII.
  static func unquotedTemplateColumn(_ text: String, line: Int) -> Int? {
    var current = 1
    var column = 1
    var quote: UInt8?
    var previous: UInt8 = 0
    var previousColumn = 0
    for byte in text.utf8 {
      if byte == UInt8(ascii: "\n") {
        if current == line { return nil }
        current += 1
        column = 1
        quote = nil
        previous = 0
        continue
      }
      if current == line {
        if let open = quote {
          if byte == open { quote = nil }
        } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
          quote = byte
        } else if byte == UInt8(ascii: "#") && (previous == 0 || previous == UInt8(ascii: " ")) {
          return nil
        } else if byte == UInt8(ascii: "{") && previous == UInt8(ascii: "{") {
          return previousColumn
        }
        previous = byte
        previousColumn = column
      }
      if byte & 0xC0 != 0x80 { column += 1 }
    }
    return nil
  }

  static func lineHasTabIndentation(_ text: String, line: Int) -> Bool {
    tabLocation(text, line: line, file: "") != nil
  }

  static func tabLocation(_ text: String, line: Int, file: String) -> SourceLocation? {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    // libyaml reports a tab either on its own line or at the start of the next token.
    for index in [line - 1, line - 2] where index >= 0 && index < lines.count {
      let bytes = Array(lines[index].utf8)
      let leading = bytes.prefix { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
      if let tab = leading.firstIndex(of: UInt8(ascii: "\t")) {
        return SourceLocation(file: file, line: index + 1, column: tab + 1)
      }
    }
    return nil
  }

  static func position(ofByte offset: Int, in bytes: [UInt8]) -> (Int, Int) {
    var line = 1
    var column = 1
    for byte in bytes.prefix(offset) {
      if byte == UInt8(ascii: "\n") {
        line += 1
        column = 1
      } else if byte & 0xC0 != 0x80 {
        column += 1
      }
    }
    return (line, column)
  }

  static func firstInvalidUTF8(in data: Data) -> (Int, Int) {
    let bytes = Array(data)
    var index = 0
    while index < bytes.count {
      let byte = bytes[index]
      let length: Int
      switch byte {
      case 0x00...0x7F: length = 1
      case 0xC2...0xDF: length = 2
      case 0xE0...0xEF: length = 3
      case 0xF0...0xF4: length = 4
      default: return position(ofByte: index, in: bytes)
      }
      if index + length > bytes.count { return position(ofByte: index, in: bytes) }
      for continuation in bytes[(index + 1)..<(index + length)] where continuation & 0xC0 != 0x80 {
        return position(ofByte: index, in: bytes)
      }
      if String(validating: bytes[index..<(index + length)], as: UTF8.self) == nil {
        return position(ofByte: index, in: bytes)
      }
      index += length
    }
    return position(ofByte: bytes.count, in: bytes)
  }

  // MARK: - Conversion

  struct Converter {
    struct Failure: Error { var diagnostic: Diagnostic }

    let file: String
    let limits: Limits
    let text: String
    var lineStarts: [String.UTF8View.Index]? = nil
    var nodes = 0
    var diagnostics: [Diagnostic] = []

    init(file: String, limits: Limits, text: String) {
      self.file = file
      self.limits = limits
      self.text = text
    }

    /// The indentation of the first non-blank line after `line` (1-based), for block scalars.
    mutating func blockIndent(after line: Int) -> Int {
      if lineStarts == nil {
        var starts = [text.utf8.startIndex]
        var index = text.utf8.startIndex
        while let newline = text.utf8[index...].firstIndex(of: UInt8(ascii: "\n")) {
          index = text.utf8.index(after: newline)
          starts.append(index)
        }
        lineStarts = starts
      }
      let starts = lineStarts!
      var current = line  // 0-based index of the line after `line`
      while current < starts.count {
        let end = current + 1 < starts.count ? starts[current + 1] : text.utf8.endIndex
        let bytes = text.utf8[starts[current]..<end]
        let indent = bytes.prefix { $0 == UInt8(ascii: " ") }.count
        if bytes.dropFirst(indent).contains(where: { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }) {
          return indent
        }
        current += 1
      }
      return 0
    }

    func location(_ mark: Mark?) -> SourceLocation {
      SourceLocation(file: file, line: max(1, mark?.line ?? 1), column: max(1, mark?.column ?? 1))
    }

    mutating func convert(_ node: Node, depth: Int) throws -> YAMLNode {
      nodes += 1
      if nodes > limits.maxNodes {
        throw Failure(
          diagnostic: .error(
            "the document expands to more than \(limits.maxNodes) nodes (through aliases or sheer size); expected a document of reasonable size.",
            at: location(node.mark)))
      }
      if depth > limits.maxDepth {
        throw Failure(
          diagnostic: .error(
            "the document nests deeper than \(limits.maxDepth) levels; expected a shallower structure.",
            at: location(node.mark)))
      }
      switch node {
      case .scalar(let scalar):
        let style: YAMLNode.Style
        var indent = 0
        switch scalar.style {
        case .singleQuoted: style = .singleQuoted
        case .doubleQuoted: style = .doubleQuoted
        case .literal: style = .literal
        case .folded: style = .folded
        default: style = .plain
        }
        if style == .literal || style == .folded {
          indent = blockIndent(after: scalar.mark?.line ?? 1)
        }
        return YAMLNode(
          .scalar(scalar.string, plain: style == .plain), at: location(scalar.mark), style: style,
          blockIndent: indent)
      case .alias(let alias):
        throw Failure(
          diagnostic: .error("unresolved alias '\(alias.anchor.rawValue)'.", at: location(alias.mark)))
      case .sequence(let sequence):
        var items: [YAMLNode] = []
        items.reserveCapacity(sequence.count)
        for item in sequence { items.append(try convert(item, depth: depth + 1)) }
        return YAMLNode(.sequence(items), at: location(sequence.mark))
      case .mapping(let mapping):
        var pairs: [YAMLPair] = []
        var merged: [YAMLPair] = []
        pairs.reserveCapacity(mapping.count)
        for (key, value) in mapping {
          guard case .scalar(let keyScalar) = key else {
            // `msg: {{ host.name }}` unquoted: YAML reads a mapping whose key is a mapping.
            if key.mapping != nil, let mark = mapping.mark, let keyMark = key.mark, keyMark.line == mark.line,
              keyMark.column == mark.column + 1
            {
              throw Failure(
                diagnostic: .error(
                  "an unquoted '{{ … }}' is read by YAML as a mapping, not as text; quote the whole value, like \"{{ name }}\".",
                  at: location(mark)))
            }
            throw Failure(
              diagnostic: .error(
                "a mapping key must be a plain value, not \(key.sequence != nil ? "a list" : "a mapping").",
                at: location(key.mark)))
          }
          let converted = try convert(value, depth: depth + 1)
          if keyScalar.string == "<<" && keyScalar.style == .plain {
            // Merge keys: `<<: *defaults` or `<<: [*a, *b]`; explicit keys win.
            let sources = converted.items ?? [converted]
            for source in sources {
              guard let sourcePairs = source.pairs else {
                throw Failure(
                  diagnostic: .error(
                    "a merge key ('<<') expects a mapping or a list of mappings.", at: source.location))
              }
              merged.append(contentsOf: sourcePairs)
            }
            continue
          }
          pairs.append(
            YAMLPair(key: keyScalar.string, keyLocation: location(keyScalar.mark), value: converted))
        }
        if !merged.isEmpty {
          var seen = Set(pairs.map(\.key))
          for pair in merged where !seen.contains(pair.key) {
            seen.insert(pair.key)
            pairs.append(pair)
          }
        }
        return YAMLNode(.mapping(pairs), at: location(mapping.mark))
      }
    }
  }
}
