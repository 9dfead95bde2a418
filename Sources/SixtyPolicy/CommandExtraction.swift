/// The commands a task would run, as deny rules see them: a `command:` argument list or `shell:`
/// text split into simple commands, looking through the wrappers that run another command
/// (`sudo`, `env`, `nice`, `nohup`, `exec`, `command`, `timeout`, `xargs`, `sh -c`, `bash -c`,
/// `eval`, `su -c`, `find -exec`, …), recursively up to `ShellCommandParser.maximumDepth`.
enum CommandExtraction {
  /// The commands of an argument list run without a shell.
  /// - Throws: `ShellParseError` when shell text inside it (`sh -c '…'`) cannot be parsed.
  static func commands(argv: [String]) throws(ShellParseError) -> [CommandWords] {
    var result: [CommandWords] = []
    try collect(argv.map { ShellWord(text: $0) }, hereDocuments: [], depth: 0, into: &result)
    return result
  }

  /// The commands of a shell command line.
  /// - Throws: `ShellParseError` for an unbalanced quote or substitution, or nesting too deep.
  static func commands(shell text: String) throws(ShellParseError) -> [CommandWords] {
    var result: [CommandWords] = []
    try collectShell(text, depth: 0, into: &result)
    return result
  }

  private static func collectShell(_ text: String, depth: Int, into result: inout [CommandWords])
    throws(ShellParseError)
  {
    for command in try ShellCommandParser.parse(text, depth: depth) {
      try collect(command.words, hereDocuments: command.hereDocuments, depth: depth, into: &result)
    }
  }

  static let shells: Set<String> = ["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"]

  /// One simple command: wrappers are peeled off (each also reported, with its options) until the
  /// command they run.
  private static func collect(
    _ original: [ShellWord], hereDocuments: [String], depth: Int, into result: inout [CommandWords]
  ) throws(ShellParseError) {
    guard depth <= ShellCommandParser.maximumDepth else {
      throw ShellParseError(
        message: "commands are nested more than \(ShellCommandParser.maximumDepth) levels deep")
    }
    var words = original[...]
    // Every pass consumes at least one word, so this ends.
    while let first = words.first {
      let name = CommandWords.baseName(first.text)
      var rest = words.dropFirst()
      switch name {
      case "sudo", "doas":
        skipOptions(&rest, withValue: ["u", "g", "C", "D", "h", "p", "r", "t", "T", "U", "R", "c"])
        skipAssignments(&rest)
      case "env":
        var split: String?
        while let word = rest.first, word.text.hasScalarPrefix("-"), word.text != "-" {
          rest = rest.dropFirst()
          let text = word.text
          if text == "--" { break }
          if text == "-u" || text == "-C" || text == "--unset" || text == "--chdir" {
            rest = rest.dropFirst()
          } else if text == "-S" || text == "--split-string" {
            split = rest.first?.text
            rest = rest.dropFirst()
          } else if text.hasScalarPrefix("--split-string=") {
            split = text.droppingScalars("--split-string=".unicodeScalars.count)
          } else if text.hasScalarPrefix("-S") {
            split = text.droppingScalars(2)
          }
        }
        skipAssignments(&rest)
        if let split {
          let parsed = try ShellCommandParser.parse(split, depth: depth + 1).first?.words ?? []
          rest = (parsed + rest)[...]
        }
      case "nice":
        while let word = rest.first, word.text.hasScalarPrefix("-"), word.text != "-" {
          rest = rest.dropFirst()
          if word.text == "--" { break }
          if word.text == "-n" || word.text == "--adjustment" { rest = rest.dropFirst() }
        }
      case "timeout":
        while let word = rest.first, word.text.hasScalarPrefix("-"), word.text != "-" {
          rest = rest.dropFirst()
          if word.text == "--" { break }
          if ["-s", "-k", "--signal", "--kill-after"].contains(word.text) { rest = rest.dropFirst() }
        }
        rest = rest.dropFirst()  // The duration.
      case "xargs":
        skipOptions(
          &rest, withValue: ["a", "d", "E", "I", "L", "n", "P", "s"],
          longWithValue: [
            "arg-file", "delimiter", "max-lines", "max-args", "max-procs", "max-chars",
            "process-slot-var",
          ])
      case "stdbuf":
        skipOptions(&rest, withValue: ["i", "o", "e"], longWithValue: ["input", "output", "error"])
      case "ionice":
        skipOptions(&rest, withValue: ["c", "n", "p", "P", "u"], longWithValue: ["class", "classdata"])
      case "chroot":
        skipOptions(&rest, withValue: [], longWithValue: ["userspec", "groups"])
        rest = rest.dropFirst()  // The new root.
      case "nohup", "setsid", "builtin", "command", "exec", "time", "chronic", "unbuffer":
        skipOptions(&rest, withValue: name == "exec" ? ["a"] : [])
      case "eval":
        result.append(CommandWords(Array(words.prefix(1))))
        try collectShell(rest.map(\.text).joined(separator: " "), depth: depth + 1, into: &result)
        return
      case "su":
        result.append(CommandWords(Array(words)))
        var iterator = rest.makeIterator()
        while let word = iterator.next() {
          if word.text == "-c" || word.text == "--command" {
            if let script = iterator.next() { try collectShell(script.text, depth: depth + 1, into: &result) }
          } else if word.text.hasScalarPrefix("--command=") {
            try collectShell(word.text.droppingScalars(10), depth: depth + 1, into: &result)
          }
        }
        return
      case _ where shells.contains(name):
        if name == "busybox" {
          // The applet is the command: `busybox rm …`, `busybox sh -c …`.
          words = rest
          continue
        }
        result.append(CommandWords(Array(words)))
        var takesCommand = false
        var operands = rest
        while let word = operands.first, word.text.hasScalarPrefix("-") || word.text.hasScalarPrefix("+"),
          word.text != "-"
        {
          operands = operands.dropFirst()
          if word.text == "--" { break }
          if word.text.hasScalarPrefix("-"), !word.text.hasScalarPrefix("--"),
            word.text.unicodeScalars.contains("c")
          {
            takesCommand = true
          }
          if word.text == "-o" || word.text == "+o" || word.text == "-O" || word.text == "+O" {
            operands = operands.dropFirst()
          }
        }
        if takesCommand, let script = operands.first {
          try collectShell(script.text, depth: depth + 1, into: &result)
        } else if operands.isEmpty || operands.first?.text == "-s" {
          // Commands on standard input: a here-document's body is shell text.
          for body in hereDocuments { try collectShell(body, depth: depth + 1, into: &result) }
        }
        return
      case "find":
        result.append(CommandWords(Array(words)))
        var remaining = rest
        while let index = remaining.firstIndex(where: {
          ["-exec", "-execdir", "-ok", "-okdir"].contains($0.text)
        }) {
          let after = remaining[(index + 1)...]
          let end = after.firstIndex(where: { $0.text == ";" || $0.text == "+" }) ?? after.endIndex
          try collect(Array(after[..<end]), hereDocuments: [], depth: depth + 1, into: &result)
          remaining = after[end...].dropFirst()
        }
        return
      default:
        result.append(CommandWords(Array(words)))
        return
      }
      // A wrapper: reported with what it consumed, then what it runs.
      let consumed = words.count - rest.count
      result.append(CommandWords(Array(words.prefix(consumed))))
      words = rest
    }
  }

  /// Drops leading options (and the values of those in `withValue`), up to and including `--`.
  private static func skipOptions(
    _ words: inout ArraySlice<ShellWord>, withValue: Set<Unicode.Scalar>, longWithValue: Set<String> = []
  ) {
    while let word = words.first, word.text.hasScalarPrefix("-"), word.text != "-" {
      words = words.dropFirst()
      let text = word.text
      if text == "--" { return }
      if text.hasScalarPrefix("--") {
        if !text.unicodeScalars.contains("="), longWithValue.contains(text.droppingScalars(2)) {
          words = words.dropFirst()
        }
        continue
      }
      // A cluster: the first option that takes a value takes the rest of the word, or the next word.
      let letters = Array(text.unicodeScalars.dropFirst())
      for (offset, letter) in letters.enumerated() where withValue.contains(letter) {
        if offset == letters.count - 1 { words = words.dropFirst() }
        break
      }
    }
  }

  private static func skipAssignments(_ words: inout ArraySlice<ShellWord>) {
    while let word = words.first, ShellCommandParser.isAssignment(word.text) { words = words.dropFirst() }
  }
}
