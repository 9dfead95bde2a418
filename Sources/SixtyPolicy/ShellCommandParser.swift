/// One word of a shell command line after quote removal.
struct ShellWord: Hashable, Sendable {
  var text: String
  /// The word holds an unquoted `*`, `?` or `[`: the shell may expand it into several paths.
  var globbed = false
  /// The word holds an expansion (`$x`, `$(…)`, backquotes) whose value is not known here.
  var expanded = false
}

/// A simple command of a shell command line: its words, redirections and leading assignments
/// removed, and the bodies of its here-documents.
struct ShellSimpleCommand: Hashable, Sendable {
  var words: [ShellWord]
  var hereDocuments: [String] = []
}

/// Why a shell command line could not be split into commands.
struct ShellParseError: Error, Hashable, Sendable, CustomStringConvertible {
  var message: String
  var description: String { message }
}

/// Splits shell text (POSIX sh, with the bash forms scripts commonly use) into the simple commands
/// it would run: across `;`, `&&`, `||`, `|`, `&`, newlines, subshells and groups, and inside
/// `$( )`, backquotes and `${ }`. Quotes and backslashes are honoured; nothing is expanded. Works
/// on Unicode scalars, in time linear in the text for each level of nesting; nesting deeper than
/// `maximumDepth` is an error, so hostile text costs bounded work and stack.
struct ShellCommandParser {
  static let maximumDepth = 12

  private let scalars: [Unicode.Scalar]
  private var index = 0
  private let depth: Int
  private(set) var commands: [ShellSimpleCommand] = []
  /// Here-documents whose bodies start at the next newline: (delimiter, strip tabs, command).
  private var pendingHereDocuments: [(delimiter: String, stripTabs: Bool, command: Int?)] = []

  /// The simple commands of `text`.
  /// - Throws: `ShellParseError` for an unterminated quote or substitution, or nesting too deep.
  static func parse(_ text: String, depth: Int = 0) throws(ShellParseError) -> [ShellSimpleCommand] {
    guard depth <= maximumDepth else {
      throw ShellParseError(message: "commands are nested more than \(maximumDepth) levels deep")
    }
    var parser = ShellCommandParser(scalars: Array(text.unicodeScalars), depth: depth)
    try parser.parseList(closing: nil)
    return parser.commands
  }

  private init(scalars: [Unicode.Scalar], depth: Int) {
    self.scalars = scalars
    self.depth = depth
  }

  private var atEnd: Bool { index >= scalars.count }
  private func peek(_ offset: Int = 0) -> Unicode.Scalar? {
    index + offset < scalars.count ? scalars[index + offset] : nil
  }

  private static let reservedAtStart: Set<String> = [
    "!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "case", "esac",
    "time", "in", "select", "coproc",
  ]

  /// Commands up to the end, or up to the `)` that closes a `$(` when `closing` is set.
  private mutating func parseList(closing: Unicode.Scalar?) throws(ShellParseError) {
    var words: [ShellWord] = []
    var hereDocuments: [(String, Bool)] = []
    /// Subshells opened in this list and not closed yet.
    var open = 0
    func flush(_ parser: inout ShellCommandParser) {
      var start = 0
      // Reserved words and assignments before the command name are not the command.
      while start < words.count {
        let word = words[start]
        if ShellCommandParser.reservedAtStart.contains(word.text) {
          start += 1
        } else if word.text == "function" {
          start += 2
          if start < words.count, words[start].text == "{" { start += 1 }
        } else if ShellCommandParser.isAssignment(word.text) {
          start += 1
        } else {
          break
        }
      }
      let command: Int? =
        start < words.count
        ? {
          parser.commands.append(ShellSimpleCommand(words: Array(words[start...])))
          return parser.commands.count - 1
        }() : nil
      for (delimiter, strip) in hereDocuments {
        parser.pendingHereDocuments.append((delimiter, strip, command))
      }
      words = []
      hereDocuments = []
    }
    while let c = peek() {
      switch c {
      case " ", "\t", "\r":
        index += 1
      case "\\" where peek(1) == "\n":
        index += 2
      case "\n":
        index += 1
        flush(&self)
        readHereDocumentBodies()
      case "#":
        while let d = peek(), d != "\n" { index += 1 }
      case ";", "&", "|":
        index += 1
        flush(&self)
      case "(":
        index += 1
        open += 1
        flush(&self)
      case ")":
        if open > 0 {
          open -= 1
        } else if closing == ")" {
          index += 1
          flush(&self)
          return
        }
        index += 1
        flush(&self)
      case "<", ">":
        try redirection(&hereDocuments)
      default:
        if ("0"..."9").contains(c), isIONumber() {
          while let d = peek(), ("0"..."9").contains(d) { index += 1 }
          try redirection(&hereDocuments)
        } else if c == "{", isBraceFD() {
          while let d = peek(), d != "}" { index += 1 }
          index += 1
          try redirection(&hereDocuments)
        } else {
          words.append(try word())
        }
      }
    }
    flush(&self)
    if closing != nil { throw ShellParseError(message: "a '$(' is never closed by ')'") }
  }

  private func isWordEnd(_ c: Unicode.Scalar?) -> Bool {
    guard let c else { return true }
    return " \t\r\n;&|()<>".unicodeScalars.contains(c)
  }

  /// Digits directly followed by `<` or `>`: a file descriptor number of a redirection.
  private func isIONumber() -> Bool {
    var i = index
    while i < scalars.count, ("0"..."9").contains(scalars[i]) { i += 1 }
    return i < scalars.count && (scalars[i] == "<" || scalars[i] == ">")
  }

  /// `{name}>`: bash's variable file descriptor redirection.
  private func isBraceFD() -> Bool {
    var i = index + 1
    while i < scalars.count,
      scalars[i].properties.isAlphabetic || scalars[i] == "_" || ("0"..."9").contains(scalars[i])
    {
      i += 1
    }
    return i + 1 < scalars.count && scalars[i] == "}" && (scalars[i + 1] == "<" || scalars[i + 1] == ">")
  }

  /// A redirection operator and its target word, dropped from the command (a here-document's
  /// delimiter is kept to skip its body).
  private mutating func redirection(_ hereDocuments: inout [(String, Bool)]) throws(ShellParseError) {
    var isHereDocument = false
    var stripTabs = false
    if peek() == "<", peek(1) == "<", peek(2) != "<" {
      isHereDocument = true
      index += 2
      if peek() == "-" {
        stripTabs = true
        index += 1
      }
    } else {
      while let c = peek(), "<>&|".unicodeScalars.contains(c) { index += 1 }
      // `>&-` closes a descriptor.
      if peek() == "-" { index += 1 }
    }
    while let c = peek(), c == " " || c == "\t" { index += 1 }
    guard let c = peek(), !isWordEnd(c) else { return }
    let target = try word()
    if isHereDocument { hereDocuments.append((target.text, stripTabs)) }
  }

  /// Skips the bodies of the here-documents opened on the line just ended; a body fed to a shell
  /// is kept with its command.
  private mutating func readHereDocumentBodies() {
    let pending = pendingHereDocuments
    pendingHereDocuments = []
    for (delimiter, stripTabs, command) in pending {
      var body = ""
      while !atEnd {
        var line = String.UnicodeScalarView()
        while let c = peek(), c != "\n" {
          line.append(c)
          index += 1
        }
        index += 1
        var text = String(line)
        if stripTabs { text = String(text.unicodeScalars.drop(while: { $0 == "\t" })) }
        if text == delimiter { break }
        body += text + "\n"
      }
      if let command { commands[command].hereDocuments.append(body) }
    }
  }

  /// One word, quotes removed; command substitutions in it are parsed as commands of their own.
  private mutating func word() throws(ShellParseError) -> ShellWord {
    var result = ShellWord(text: "")
    var text = String.UnicodeScalarView()
    while let c = peek() {
      switch c {
      case " ", "\t", "\r", "\n", ";", "&", "|", "(", ")", "<", ">":
        result.text = String(text)
        return result
      case "\\":
        index += 1
        if let d = peek() {
          if d != "\n" { text.append(d) }
          index += 1
        }
      case "'":
        let start = index
        index += 1
        while let d = peek(), d != "'" {
          text.append(d)
          index += 1
        }
        guard !atEnd else { throw unterminated("single quote", at: start) }
        index += 1
      case "\"":
        try doubleQuoted(into: &text, result: &result)
      case "`":
        try backquoted(into: &text)
        result.expanded = true
      case "$":
        try dollar(into: &text, result: &result)
      case "*", "?", "[":
        result.globbed = true
        text.append(c)
        index += 1
      default:
        text.append(c)
        index += 1
      }
    }
    result.text = String(text)
    return result
  }

  private func unterminated(_ what: String, at start: Int) -> ShellParseError {
    ShellParseError(message: "the \(what) at character \(start + 1) is never closed")
  }

  private mutating func doubleQuoted(
    into text: inout String.UnicodeScalarView, result: inout ShellWord
  ) throws(ShellParseError) {
    let start = index
    index += 1
    while let c = peek() {
      switch c {
      case "\"":
        index += 1
        return
      case "\\":
        index += 1
        if let d = peek() {
          if d == "\n" {
          } else if "$`\"\\".unicodeScalars.contains(d) {
            text.append(d)
          } else {
            text.append("\\")
            text.append(d)
          }
          index += 1
        }
      case "`":
        try backquoted(into: &text)
        result.expanded = true
      case "$":
        try dollar(into: &text, result: &result)
      default:
        text.append(c)
        index += 1
      }
    }
    throw unterminated("double quote", at: start)
  }

  /// `` `…` ``: its text, backslashes before `` ` ``, `\` and `$` removed, parsed as commands.
  private mutating func backquoted(into text: inout String.UnicodeScalarView) throws(ShellParseError) {
    let start = index
    index += 1
    var inner = String.UnicodeScalarView()
    while let c = peek() {
      if c == "`" {
        index += 1
        text.append(contentsOf: "`".unicodeScalars)
        text.append(contentsOf: inner)
        text.append(contentsOf: "`".unicodeScalars)
        commands += try Self.parse(String(inner), depth: depth + 1)
        return
      }
      if c == "\\", let d = peek(1), "`\\$".unicodeScalars.contains(d) {
        inner.append(d)
        index += 2
        continue
      }
      inner.append(c)
      index += 1
    }
    throw unterminated("backquote", at: start)
  }

  /// `$name`, `${…}`, `$(…)`, `$((…))`, `$'…'`, or a lone `$`.
  private mutating func dollar(
    into text: inout String.UnicodeScalarView, result: inout ShellWord
  ) throws(ShellParseError) {
    let start = index
    switch peek(1) {
    case "(" where peek(2) == "(":
      // Arithmetic: no commands, but a `$(` inside it would still run.
      index += 3
      var level = 2
      while let c = peek(), level > 0 {
        if c == "$", peek(1) == "(", peek(2) != "(" {
          var ignored = ShellWord(text: "")
          var scratch = String.UnicodeScalarView()
          try dollar(into: &scratch, result: &ignored)
          continue
        }
        if c == "(" { level += 1 }
        if c == ")" { level -= 1 }
        index += 1
      }
      guard level == 0 else { throw unterminated("'$(('", at: start) }
    case "(":
      index += 2
      var nested = ShellCommandParser(scalars: scalars, depth: depth + 1)
      guard nested.depth <= Self.maximumDepth else {
        throw ShellParseError(message: "commands are nested more than \(Self.maximumDepth) levels deep")
      }
      nested.index = index
      do {
        try nested.parseList(closing: ")")
      } catch {
        if nested.atEnd { throw unterminated("'$('", at: start) }
        throw error
      }
      commands += nested.commands
      index = nested.index
    case "{":
      index += 2
      var level = 1
      while let c = peek(), level > 0 {
        switch c {
        case "\\": index += 2
        case "'":
          let quote = index
          index += 1
          while let d = peek(), d != "'" { index += 1 }
          guard !atEnd else { throw unterminated("single quote", at: quote) }
          index += 1
        case "\"":
          var scratch = String.UnicodeScalarView()
          var ignored = ShellWord(text: "")
          try doubleQuoted(into: &scratch, result: &ignored)
        case "`":
          var scratch = String.UnicodeScalarView()
          try backquoted(into: &scratch)
        case "$" where peek(1) == "(" || peek(1) == "{":
          var scratch = String.UnicodeScalarView()
          var ignored = ShellWord(text: "")
          try dollar(into: &scratch, result: &ignored)
        case "}":
          level -= 1
          index += 1
        default: index += 1
        }
      }
      guard level == 0 else { throw unterminated("'${'", at: start) }
    case "'":
      // bash's $'…': backslash escapes; the common ones are decoded.
      index += 2
      while let c = peek(), c != "'" {
        if c == "\\", let d = peek(1) {
          switch d {
          case "n": text.append("\n")
          case "t": text.append("\t")
          case "\\", "'", "\"": text.append(d)
          default:
            text.append("\\")
            text.append(d)
          }
          index += 2
          continue
        }
        text.append(c)
        index += 1
      }
      guard !atEnd else { throw unterminated("$' quote", at: start) }
      index += 1
      return
    case let c?
    where c.properties.isAlphabetic || c == "_" || ("0"..."9").contains(c)
      || "@*#?$!-".unicodeScalars.contains(c):
      index += 2
      if c.properties.isAlphabetic || c == "_" {
        while let d = peek(), d.properties.isAlphabetic || d == "_" || ("0"..."9").contains(d) { index += 1 }
      }
    default:
      index += 1
      text.append("$")
      return
    }
    text.append(contentsOf: scalars[start..<index])
    result.expanded = true
  }

  /// `NAME=value` (NAME a shell identifier), or `NAME+=value`.
  static func isAssignment(_ word: String) -> Bool {
    let scalars = Array(word.unicodeScalars)
    guard let equals = scalars.firstIndex(of: "="), equals > 0 else { return false }
    var end = equals
    if scalars[end - 1] == "+" { end -= 1 }
    guard end > 0, !("0"..."9").contains(scalars[0]) else { return false }
    return scalars[..<end].allSatisfy {
      $0 == "_" || ($0.isASCII && $0.properties.isAlphabetic) || ("0"..."9").contains($0)
    }
  }
}
