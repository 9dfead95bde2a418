/// A command as deny rules compare it: its name (without a directory), its options as a set in one
/// spelling, and its operands (paths lexically normalised).
///
/// `rm -rf /`, `rm -fr /`, `rm -r -f /`, `/bin/rm -R --force /`, `rm --recursive / --force` and
/// `rm -rf -- /` all become `rm {f, r} [/]`.
struct CommandWords: Hashable, Sendable {
  var name: String
  var options: Set<String>
  var operands: [String]
  /// Operands the shell may expand into several paths (`/*`), normalised.
  var globbedOperands: [String] = []

  /// Whether this command does what `rule` describes: the same name (`mkfs` also covers
  /// `mkfs.ext4`), every option of the rule, and every operand of the rule among this command's
  /// (an operand `DIR/*` counts as `DIR`).
  func matches(_ rule: CommandWords) -> Bool {
    guard name == rule.name || name.hasScalarPrefix(rule.name + ".") else { return false }
    guard rule.options.isSubset(of: options) else { return false }
    for operand in rule.operands {
      if operands.contains(operand) { continue }
      if globbedOperands.contains(where: { Self.globCovers($0, operand) }) { continue }
      return false
    }
    return true
  }

  /// Whether `pattern` (a glob operand) names everything in `path`: `/*` for `/`, `/srv/*` for `/srv`.
  static func globCovers(_ pattern: String, _ path: String) -> Bool {
    for suffix in ["/*", "/.*", "/**"] where pattern.hasScalarSuffix(suffix) {
      let base = String(pattern.unicodeScalars.dropLast(suffix.unicodeScalars.count))
      if (base.isEmpty ? "/" : base) == path { return true }
    }
    return pattern == "*" && path == "."
  }

  /// The words of one command (its name first), normalised.
  init(_ words: [ShellWord]) {
    let first = words.first?.text ?? ""
    name = Self.baseName(first)
    let spelling = OptionSpelling.of(name)
    var options: Set<String> = []
    var operands: [String] = []
    var globbed: [String] = []
    var endOfOptions = false
    var i = 1
    func operand(_ word: ShellWord) {
      let normalised = Self.normalisedPath(word.text)
      operands.append(normalised)
      if word.globbed { globbed.append(normalised) }
    }
    while i < words.count {
      let word = words[i]
      let text = word.text
      i += 1
      if endOfOptions || !text.hasScalarPrefix("-") || text == "-" {
        operand(word)
        continue
      }
      if text == "--" {
        endOfOptions = true
        continue
      }
      if spelling.wholeWordOptions {
        options.insert(text)
        continue
      }
      if text.hasScalarPrefix("--") {
        let body = text.unicodeScalars.dropFirst(2)
        let equals = body.firstIndex(of: "=")
        let long = spelling.resolveLong(String(body[..<(equals ?? body.endIndex)]))
        var value = equals.map { String(body[body.index(after: $0)...]) }
        if value == nil, spelling.longWithValue.contains(long), i < words.count {
          value = words[i].text
          i += 1
        }
        if spelling.signals && long == "signal" {
          options.insert("signal=" + Signals.number(value ?? ""))
          continue
        }
        options.insert(spelling.shortFor[long].map { String($0) } ?? "--" + long)
        if let value { operand(ShellWord(text: value)) }
        continue
      }
      let body = text.droppingScalars(1)
      if spelling.signals, Signals.isSignal(body) {
        options.insert("signal=" + Signals.number(body))
        continue
      }
      if spelling.signals, body == "s", spelling.shortSignalOption, i < words.count {
        options.insert("signal=" + Signals.number(words[i].text))
        i += 1
        continue
      }
      for scalar in body.unicodeScalars {
        let short = spelling.shortAlias[scalar] ?? scalar
        options.insert(String(short))
      }
    }
    self.options = options
    self.operands = operands
    self.globbedOperands = globbed
  }

  /// `/bin/rm` → `rm`.
  static func baseName(_ word: String) -> String {
    guard let slash = word.unicodeScalars.lastIndex(of: "/") else { return word }
    let after = word.unicodeScalars.index(after: slash)
    return String(word.unicodeScalars[after...])
  }

  /// A path with `//`, `/./`, `..` and a trailing `/` resolved lexically: `//etc/../` → `/`.
  /// Text that is not a path comes back as it was.
  static func normalisedPath(_ text: String) -> String {
    guard text.unicodeScalars.contains("/") || text == "." || text == ".." else { return text }
    let absolute = text.hasScalarPrefix("/")
    var parts: [String] = []
    for part in text.unicodeScalars.split(separator: "/", omittingEmptySubsequences: true).map(String.init) {
      if part == "." { continue }
      if part == "..", let last = parts.last, last != ".." {
        parts.removeLast()
        continue
      }
      if part == "..", absolute { continue }
      parts.append(part)
    }
    let joined = parts.joined(separator: "/")
    if absolute { return "/" + joined }
    return joined.isEmpty ? "." : joined
  }
}

/// How a command spells its options: which long options GNU documents as the same as a short one,
/// and which commands take signals or single-dash words (find).
struct OptionSpelling: Sendable {
  /// Long option names to the short option they equal.
  var shortFor: [String: Character] = [:]
  /// Short options that mean the same as another (`rm -R` is `rm -r`).
  var shortAlias: [Unicode.Scalar: Unicode.Scalar] = [:]
  /// Long options whose value may be the next word.
  var longWithValue: Set<String> = []
  /// Every word starting with '-' is one option (find's `-delete`, `-name`).
  var wholeWordOptions = false
  /// `-9`, `-KILL`, `-SIGKILL`, `--signal=KILL` all name one signal.
  var signals = false
  /// `-s SIGNAL` names a signal (kill, not pkill).
  var shortSignalOption = false

  /// A long option as written, or the one long option it abbreviates (GNU accepts unique prefixes).
  func resolveLong(_ name: String) -> String {
    if shortFor[name] != nil || longWithValue.contains(name) { return name }
    let candidates = Set(shortFor.keys).union(longWithValue).filter { $0.hasScalarPrefix(name) }
    return candidates.count == 1 ? candidates.first! : name
  }

  static func of(_ command: String) -> OptionSpelling {
    if command.hasScalarPrefix("mkfs") { return table["mkfs"]! }
    return table[command] ?? OptionSpelling()
  }

  static let table: [String: OptionSpelling] = {
    var table: [String: OptionSpelling] = [:]
    table["rm"] = OptionSpelling(
      shortFor: [
        "recursive": "r", "force": "f", "dir": "d", "verbose": "v", "interactive": "i",
      ],
      shortAlias: ["R": "r"])
    let ownership = OptionSpelling(
      shortFor: [
        "recursive": "R", "changes": "c", "silent": "f", "quiet": "f", "verbose": "v",
        "no-dereference": "h",
      ],
      longWithValue: ["reference", "from"])
    table["chmod"] = ownership
    table["chown"] = ownership
    table["chgrp"] = ownership
    table["dd"] = OptionSpelling()
    table["mkfs"] = OptionSpelling(
      shortFor: ["type": "t", "verbose": "V", "force": "f", "label": "L"], longWithValue: ["type", "label"])
    table["shutdown"] = OptionSpelling(
      shortFor: ["halt": "H", "poweroff": "P", "reboot": "r"], shortAlias: ["h": "P"])
    let power = OptionSpelling(
      shortFor: [
        "halt": "H", "poweroff": "p", "reboot": "r", "force": "f", "wtmp-only": "w", "no-wtmp": "d",
      ])
    table["reboot"] = power
    table["halt"] = power
    table["poweroff"] = power
    table["systemctl"] = OptionSpelling(
      shortFor: [
        "force": "f", "all": "a", "type": "t", "quiet": "q", "host": "H", "machine": "M", "signal": "s",
        "recursive": "r", "lines": "n", "output": "o", "full": "l",
      ],
      longWithValue: ["type", "host", "machine", "signal", "lines", "output", "state", "kill-whom"])
    table["kill"] = OptionSpelling(
      longWithValue: ["signal"], signals: true, shortSignalOption: true)
    let pkill = OptionSpelling(
      shortFor: [
        "full": "f", "exact": "x", "euid": "u", "uid": "U", "newest": "n", "oldest": "o", "parent": "P",
        "pgroup": "g", "session": "s", "group": "G", "terminal": "t", "ignore-case": "i",
      ],
      longWithValue: ["signal", "euid", "uid", "parent", "pgroup", "session", "group", "terminal"],
      signals: true)
    table["pkill"] = pkill
    table["killall"] = OptionSpelling(
      shortFor: ["exact": "e", "ignore-case": "I", "interactive": "i", "user": "u", "wait": "w"],
      longWithValue: ["signal", "user"], signals: true, shortSignalOption: true)
    let iptables = OptionSpelling(
      shortFor: [
        "append": "A", "delete": "D", "insert": "I", "replace": "R", "list": "L", "flush": "F", "zero": "Z",
        "new-chain": "N", "delete-chain": "X", "policy": "P", "rename-chain": "E", "list-rules": "S",
        "table": "t", "jump": "j", "goto": "g", "protocol": "p", "source": "s", "destination": "d",
        "in-interface": "i", "out-interface": "o", "match": "m", "numeric": "n", "verbose": "v",
      ],
      longWithValue: [
        "append", "delete", "insert", "replace", "list", "flush", "zero", "new-chain", "delete-chain",
        "policy", "rename-chain", "list-rules", "table", "jump", "goto", "protocol", "source", "destination",
        "in-interface", "out-interface", "match",
      ])
    table["iptables"] = iptables
    table["ip6tables"] = iptables
    table["find"] = OptionSpelling(wholeWordOptions: true)
    return table
  }()
}

/// Signal names and numbers as kill, pkill and systemctl take them (and as SSH's `exit-signal`
/// names them).
public enum Signals {
  public static let numbers: [String: Int] = [
    "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
    "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16, "CHLD": 17,
    "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25,
    "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
  ]

  /// `9`, `KILL`, `SIGKILL`, `kill`: a signal.
  static func isSignal(_ text: String) -> Bool {
    if !text.isEmpty, text.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) { return true }
    return name(text) != nil
  }

  private static func name(_ text: String) -> Int? {
    var upper = text.uppercased()
    if upper.hasScalarPrefix("SIG") { upper.removeFirst(3) }
    return numbers[upper]
  }

  /// The signal's number as text, or the text itself when it names no known signal.
  static func number(_ text: String) -> String {
    if let value = name(text) { return String(value) }
    return text
  }
}
