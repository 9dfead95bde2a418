import SixtyCore

/// Reads Ansible's INI inventory format, as Ansible's `ini` inventory plugin does.
///
/// ```ini
/// web1.example.com ansible_port=2222          # before any section: ungrouped
/// [web]
/// web[01:20].example.com ansible_user=deploy
/// [db]
/// db-[a:c] ansible_host=10.0.3.1
/// [prod:children]
/// web
/// db
/// [prod:vars]
/// ntp_server=ntp.example.com
/// ```
///
/// Host lines are split like a POSIX shell (quotes, backslashes, `#` comments); values, on host
/// lines and in `:vars` sections alike, are read as Python literals when they are one (`5`,
/// `0x10`, `True`, `[1, 2]`, `{'a': 1}`, `'quoted'`) and kept as text otherwise (`FALSE`,
/// `yes`, `01`).
enum AnsibleINIInventory {
  static func parse(_ text: String, file: String) -> AnsibleInventoryBuilder {
    var builder = AnsibleInventoryBuilder(file: file)
    enum State { case hosts, vars, children }
    var state = State.hosts
    var group = "ungrouped"
    builder.group("ungrouped", at: builder.at(1, 1))
    var declaredVars: [(String, SourceLocation)] = []
    var defined: Set<String> = []
    var lineNumber = 0
    for line in InventoryFormat.lines(text) {
      lineNumber += 1
      let leading = line.unicodeScalars.prefix { $0 == " " || $0 == "\t" }.count
      let content = String(line).trimmingWhitespace()
      guard let first = content.unicodeScalars.first, first != "#", first != ";" else { continue }
      let location = builder.at(lineNumber, leading + 1)
      if first == "[" {
        guard let (name, kind) = section(content) else {
          builder.diagnostics.error(
            "\(SafeText.quoted(content)) is not a section header; expected [group], [group:vars] or [group:children] (no spaces inside the brackets).",
            at: location)
          // Skip the section's lines rather than read them as hosts of the previous one.
          state = .vars
          group = ""
          continue
        }
        switch kind {
        case nil, "hosts":
          state = .hosts
        case "vars":
          state = .vars
        case "children":
          state = .children
        default:
          builder.diagnostics.error(
            "the section \(SafeText.quoted("[\(name):\(kind!)]")) has an unknown type \(SafeText.quoted(kind!)); expected [group], [group:vars] or [group:children].",
            at: location)
          state = .vars
          group = ""
          continue
        }
        group = builder.group(name, at: location.advanced(by: 1)) ? name : ""
        if kind == "vars" {
          if !group.isEmpty { declaredVars.append((name, location)) }
        } else {
          defined.insert(name)
        }
        continue
      }
      guard !group.isEmpty else { continue }
      switch state {
      case .hosts:
        hostLine(content, group: group, line: lineNumber, column: leading + 1, into: &builder)
      case .vars:
        guard let equals = content.unicodeScalars.firstIndex(of: "=") else {
          builder.diagnostics.error(
            "\(SafeText.quoted(content)) in [\(group):vars] is not a variable; expected key=value.",
            at: location)
          continue
        }
        let key = String(content.unicodeScalars[..<equals]).trimmingWhitespace()
        let value = String(content.unicodeScalars[content.unicodeScalars.index(after: equals)...])
          .trimmingWhitespace()
        builder.variable(key, PythonLiteral.value(of: value), group: group, at: location)
      case .children:
        // A group name, optionally followed by a '#' comment, as Ansible reads it.
        var name = content
        if let hash = name.unicodeScalars.firstIndex(of: "#") {
          name = String(name.unicodeScalars[..<hash]).trimmingWhitespace()
        }
        builder.child(name, of: group, at: location)
        defined.insert(name)
      }
    }
    // A [group:vars] section for a group defined nowhere else is an error in Ansible.
    for (name, location) in declaredVars where name != "all" && name != "ungrouped" && !defined.contains(name)
    {
      builder.diagnostics.error(
        "the section [\(name):vars] sets variables of the group '\(name)', which no [\(name)] or [\(name):children] section defines and no group lists as a child; expected the group defined too.",
        at: location)
    }
    return builder
  }

  /// `[name]`, `[name:kind]` (with an optional trailing `#` comment): the name has no ':', ']'
  /// or whitespace.
  static func section(_ line: String) -> (String, String?)? {
    var scalars = line.unicodeScalars[...]
    guard scalars.first == "[" else { return nil }
    scalars = scalars.dropFirst()
    guard let close = scalars.firstIndex(of: "]") else { return nil }
    let inside = scalars[..<close]
    let after = String(scalars[scalars.index(after: close)...]).trimmingWhitespace()
    guard after.isEmpty || after.hasPrefix("#") || after.hasPrefix(";") else { return nil }
    let parts = inside.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
    let name = String(parts[0])
    guard !name.isEmpty, !name.unicodeScalars.contains(where: { $0 == " " || $0 == "\t" || $0 == "[" }) else {
      return nil
    }
    if parts.count == 2 {
      let kind = String(parts[1])
      guard !kind.isEmpty,
        kind.unicodeScalars.allSatisfy({
          $0 == "_" || SafeText.isAlphanumeric(UInt8(truncatingIfNeeded: $0.value)) && $0.isASCII
        })
      else { return nil }
      return (name, kind)
    }
    return (name, nil)
  }

  /// `PATTERN [key=value]...`: the hosts of the pattern, with their variables, join `group`.
  static func hostLine(
    _ line: String, group: String, line lineNumber: Int, column: Int,
    into builder: inout AnsibleInventoryBuilder
  ) {
    let tokens: [(String, Int)]
    do {
      tokens = try ShellWords.split(line)
    } catch {
      builder.diagnostics.error(
        "\(error.message); expected a host pattern followed by key=value variables.",
        at: builder.at(lineNumber, column + error.offset))
      return
    }
    guard let (pattern, _) = tokens.first else { return }
    let location = builder.at(lineNumber, column)
    var vars: [String: Value] = [:]
    var locations: [String: SourceLocation] = [:]
    for (token, offset) in tokens.dropFirst() {
      let tokenLocation = builder.at(lineNumber, column + offset)
      guard let equals = token.unicodeScalars.firstIndex(of: "="), equals != token.unicodeScalars.startIndex
      else {
        builder.diagnostics.error(
          "\(SafeText.quoted(token)) after the host \(SafeText.quoted(pattern)) is not a variable; expected key=value.",
          at: tokenLocation)
        return
      }
      let key = String(token.unicodeScalars[..<equals])
      guard builder.checkVariableName(key, at: tokenLocation) else { return }
      vars[key] = PythonLiteral.value(
        of: String(token.unicodeScalars[token.unicodeScalars.index(after: equals)...]))
      locations[key] = tokenLocation
    }
    let expanded: (names: [String], port: Int?)
    do {
      expanded = try AnsibleHostPattern.expand(pattern)
    } catch {
      builder.diagnostics.error(error.message, at: location)
      return
    }
    if let port = expanded.port, vars["ansible_port"] == nil {
      vars["ansible_port"] = .string(String(port))
      locations["ansible_port"] = location
    }
    for name in expanded.names {
      builder.host(name, vars: vars, varLocations: locations, group: group, at: location)
    }
  }
}

/// Splits a line into words like Python's `shlex.split(line, comments=True)`, which Ansible
/// uses for INI host lines: whitespace separates words, quotes group (and are removed), a
/// backslash escapes the next character outside single quotes, and `#` outside quotes ends the
/// line. Offsets are in Unicode scalars from the line's start.
enum ShellWords {
  struct Failure: Error {
    var message: String
    var offset: Int
  }

  static func split(_ line: String) throws(Failure) -> [(String, Int)] {
    var words: [(String, Int)] = []
    var current = String.UnicodeScalarView()
    var start: Int?
    var quote: Unicode.Scalar?
    var quoteStart = 0
    var escaped = false
    for (i, c) in line.unicodeScalars.enumerated() {
      if escaped {
        if quote == "\"" && c != "\"" && c != "\\" { current.append("\\") }
        current.append(c)
        escaped = false
        continue
      }
      if let q = quote {
        if c == q {
          quote = nil
        } else if c == "\\" && q == "\"" {
          escaped = true
        } else {
          current.append(c)
        }
        continue
      }
      switch c {
      case " ", "\t":
        if let s = start {
          words.append((String(current), s))
          current = String.UnicodeScalarView()
          start = nil
        }
      case "#":
        if let s = start { words.append((String(current), s)) }
        return words
      case "'", "\"":
        quote = c
        quoteStart = i
        if start == nil { start = i }
      case "\\":
        escaped = true
        if start == nil { start = i }
      default:
        current.append(c)
        if start == nil { start = i }
      }
    }
    if quote != nil {
      throw Failure(message: "the line has a quote (\(quote!)) that is never closed", offset: quoteStart)
    }
    if escaped {
      throw Failure(message: "the line ends with a lone backslash", offset: line.unicodeScalars.count - 1)
    }
    if let s = start { words.append((String(current), s)) }
    return words
  }
}

/// Python literals as `ast.literal_eval` reads them (strings, numbers, `True`, `False`, `None`,
/// lists, tuples, dicts), for Ansible INI values: a value that is not one stays text.
enum PythonLiteral {
  /// The value of `text`: the literal it spells, or the text itself.
  static func value(of text: String) -> Value {
    var parser = Parser(scalars: Array(text.unicodeScalars))
    parser.skipSpace()
    guard let value = parser.parseValue(depth: 0) else { return .string(text) }
    parser.skipSpace()
    return parser.index == parser.scalars.count ? value : .string(text)
  }

  struct Parser {
    let scalars: [Unicode.Scalar]
    var index = 0

    var peek: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

    mutating func skipSpace() {
      while let c = peek, c == " " || c == "\t" { index += 1 }
    }

    mutating func parseValue(depth: Int) -> Value? {
      guard depth < 32, let c = peek else { return nil }
      switch c {
      case "'", "\"": return parseString()
      case "[": return parseSequence(close: "]", depth: depth)
      case "(": return parseSequence(close: ")", depth: depth)
      case "{": return parseDict(depth: depth)
      default:
        if let word = parseWord() { return word }
        return parseNumber()
      }
    }

    mutating func parseWord() -> Value? {
      for (word, value) in [("True", "True"), ("False", "False"), ("None", "")] {
        let w = Array(word.unicodeScalars)
        if index + w.count <= scalars.count, Array(scalars[index..<(index + w.count)]) == w {
          let next = index + w.count < scalars.count ? scalars[index + w.count] : nil
          if let next, next.properties.isAlphabetic || ("0"..."9").contains(next) || next == "_" {
            return nil
          }
          index += w.count
          return .string(value)
        }
      }
      return nil
    }

    mutating func parseString() -> Value? {
      guard let q = peek else { return nil }
      index += 1
      var out = String.UnicodeScalarView()
      while let c = peek {
        index += 1
        if c == q { return .string(String(out)) }
        if c == "\n" { return nil }
        if c == "\\", let e = peek {
          index += 1
          switch e {
          case "n": out.append("\n")
          case "t": out.append("\t")
          case "r": out.append("\r")
          case "\\", "'", "\"": out.append(e)
          case "0": out.append("\u{0}")
          default:
            out.append("\\")
            out.append(e)
          }
          continue
        }
        out.append(c)
      }
      return nil
    }

    mutating func parseSequence(close: Unicode.Scalar, depth: Int) -> Value? {
      index += 1
      var items: [Value] = []
      skipSpace()
      if peek == close {
        index += 1
        return .list(items)
      }
      while true {
        skipSpace()
        guard let item = parseValue(depth: depth + 1) else { return nil }
        items.append(item)
        skipSpace()
        if peek == "," {
          index += 1
          skipSpace()
          if peek == close {
            index += 1
            return .list(items)
          }
          continue
        }
        if peek == close {
          index += 1
          return .list(items)
        }
        return nil
      }
    }

    mutating func parseDict(depth: Int) -> Value? {
      index += 1
      var map: [String: Value] = [:]
      skipSpace()
      if peek == "}" {
        index += 1
        return .map(map)
      }
      while true {
        skipSpace()
        guard let key = parseValue(depth: depth + 1), case .string(let name) = key else { return nil }
        skipSpace()
        guard peek == ":" else { return nil }
        index += 1
        skipSpace()
        guard let value = parseValue(depth: depth + 1) else { return nil }
        map[name] = value
        skipSpace()
        if peek == "," {
          index += 1
          skipSpace()
          if peek == "}" {
            index += 1
            return .map(map)
          }
          continue
        }
        if peek == "}" {
          index += 1
          return .map(map)
        }
        return nil
      }
    }

    /// Integers (decimal without leading zeros, 0x, 0o, 0b, '_' between digits) and floats,
    /// written back as Python prints them.
    mutating func parseNumber() -> Value? {
      let start = index
      var negative = false
      if peek == "+" || peek == "-" {
        negative = peek == "-"
        index += 1
      }
      var body = String.UnicodeScalarView()
      while let c = peek,
        c.properties.isASCIIHexDigit || c == "_" || c == "." || c == "x" || c == "X" || c == "o" || c == "O"
          || ((c == "+" || c == "-") && (body.last == "e" || body.last == "E"))
      {
        body.append(c)
        index += 1
      }
      let text = String(body)
      guard !text.isEmpty, !text.hasPrefix("_"), !text.hasSuffix("_"), !text.contains("__") else {
        index = start
        return nil
      }
      let plain = text.replacingUnderscores()
      let lower = plain.lowercased()
      var integer: Int?
      if lower.hasPrefix("0x") {
        integer = Int(lower.dropFirst(2), radix: 16)
      } else if lower.hasPrefix("0o") {
        integer = Int(lower.dropFirst(2), radix: 8)
      } else if lower.hasPrefix("0b") {
        integer = Int(lower.dropFirst(2), radix: 2)
      } else if plain.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) {
        // Python refuses leading zeros ("010"), except for zero itself ("00").
        if plain.count > 1 && plain.hasPrefix("0") && plain.unicodeScalars.contains(where: { $0 != "0" }) {
          index = start
          return nil
        }
        if let value = Int(plain) {
          integer = value
        } else if plain.count <= 4300 {
          // Larger than 64 bits: Python keeps it exactly.
          let digits = String(plain.drop { $0 == "0" })
          return .string((negative ? "-" : "") + (digits.isEmpty ? "0" : digits))
        }
      } else if lower.unicodeScalars.allSatisfy({
        ("0"..."9").contains($0) || $0 == "." || $0 == "e" || $0 == "+" || $0 == "-"
      }),
        lower.unicodeScalars.contains(where: { ("0"..."9").contains($0) }), let double = Double(lower),
        double.isFinite
      {
        let value = negative ? -double : double
        var text = "\(value)"
        if text.hasSuffix(".0") == false && !text.contains(".") && !text.contains("e") { text += ".0" }
        return .string(text)
      }
      guard let integer else {
        index = start
        return nil
      }
      return .string(String(negative ? -integer : integer))
    }
  }
}

extension String {
  fileprivate func replacingUnderscores() -> String {
    String(String.UnicodeScalarView(unicodeScalars.filter { $0 != "_" }))
  }
}
