/// A target expression as written in `hosts:`, `--limit`, `sixty exec`, policy host rules and jobs.
///
/// A term is `all`, a group name, a host name, a glob over host names (`web-*`), `tag=value` or
/// `tag!=value` (values may be globs), and any term may be negated with a leading `!`. Terms
/// joined by commas must all hold (AND). Ansible's operators join such comma groups ("parts"):
/// `a:b` is the union, `a:&b` the intersection and `a:!b` the exclusion, evaluated as Ansible
/// does: the union of the plain parts first (every host when there is none), then each `&` part
/// intersected, then each `!` part taken away. A `!` or `&` at the start of a part applies to
/// the whole part once the selector uses `:`; without any `:` the selector reads as it always
/// has (`!web,role=db` is the db hosts outside the web group).
///
/// Where `:` belongs to a term instead: `:&` and `:!` always join parts; a plain `:` is part of
/// the term inside `[...]` (a glob class, a bracketed IPv6 address), in a term made only of hex
/// digits, `.` and at least two `:` (an IPv6 address), in a tag test's key (AWS keys like
/// `aws:autoscaling:groupName=web`), and in a tag test's value unless another tag test follows,
/// which then starts at the value's first `:` (`arn=arn:aws:*` is one test, `role=web:role=db`
/// two, `role=web:arn=arn:aws:*` two). So `role=web:db` is the tag value
/// `web:db` and `db:role=web` the tag key `db:role`. A name and a tag test still combine with
/// `:&` and `:!`; for hosts matching either, use a YAML list or a second `--limit`.
///
/// A list of selector strings is their union.
public struct HostSelector: Hashable, Sendable, CustomStringConvertible {
  public enum Term: Hashable, Sendable {
    case all
    /// A group or host name, or a glob over host names; which one is decided against the inventory.
    case name(String)
    case tag(key: String, value: String, equal: Bool)
  }

  public struct Clause: Hashable, Sendable {
    public var term: Term
    public var negated: Bool
    public var text: String
  }

  /// Union of intersections: `alternatives[i]` is a list of clauses that must all hold.
  public var alternatives: [[Clause]]
  public var text: String
  /// The comma groups of two or more terms, as written (for explaining an empty selection).
  public var conjunctions: [String] = []

  public var description: String { text }

  /// The most alternatives a selector may expand to: excluding a comma group of n terms
  /// multiplies the alternatives by n, so a hostile selector could otherwise grow without bound.
  public static let maximumAlternatives = 4096
  /// The most terms all alternatives may hold together (each carries the intersected parts).
  public static let maximumClauses = 200_000

  /// Parses one selector string (comma groups joined by `:`, `:&` and `:!`).
  /// - Throws: `HostSelector.ParseError` naming the bad term and its offset.
  public init(parsing text: String) throws(ParseError) {
    let parsed = try Self.parsePattern(text)
    self.init(alternatives: parsed.alternatives, text: text)
    conjunctions = parsed.conjunctions
  }

  /// Parses a union of selector strings.
  public init(union texts: [String]) throws(ParseError) {
    var alternatives: [[Clause]] = []
    var conjunctions: [String] = []
    for text in texts {
      let parsed = try Self.parsePattern(text)
      alternatives.append(contentsOf: parsed.alternatives)
      conjunctions.append(contentsOf: parsed.conjunctions)
      guard alternatives.count <= Self.maximumAlternatives else {
        throw ParseError(
          message:
            "the selectors expand to more than \(Self.maximumAlternatives) alternatives; expected fewer or shorter excluded comma groups.",
          offset: 0)
      }
    }
    self.init(alternatives: alternatives, text: texts.joined(separator: " | "))
    self.conjunctions = conjunctions
  }

  init(alternatives: [[Clause]], text: String) {
    self.alternatives = alternatives
    self.text = text
  }

  public struct ParseError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// Offset of the bad term in the selector text, in characters.
    public var offset: Int
    public var description: String { message }
  }

  /// How a comma group joins the others.
  enum Operator { case union, intersection, exclusion }

  /// One comma group: its operator, and its scalars' range in the selector text.
  struct Part {
    var op: Operator
    var start: Int
    var end: Int
  }

  /// Splits a selector into its parts (see the type's comment for which `:` joins parts) and
  /// combines them into a union of intersections.
  static func parsePattern(_ text: String) throws(ParseError) -> (
    alternatives: [[Clause]], conjunctions: [String]
  ) {
    let scalars = Array(text.unicodeScalars)
    let parts = try split(scalars, text: text)
    var unions: [[Clause]] = []
    var intersection: [Clause] = []
    var exclusions: [[Clause]] = []
    var conjunctions: [String] = []
    for part in parts {
      let partText = String(String.UnicodeScalarView(scalars[part.start..<part.end]))
      let (clauses, terms) = try parseConjunction(partText, in: text, at: part.start)
      if terms > 1 { conjunctions.append(partText.trimmingWhitespace()) }
      switch part.op {
      case .union: unions.append(clauses)
      case .intersection: intersection.append(contentsOf: clauses)
      case .exclusion: exclusions.append(clauses.filter { !($0.term == .all && !$0.negated) })
      }
    }
    if unions.isEmpty { unions = [[Clause(term: .all, negated: false, text: "all")]] }
    // Every alternative carries the intersected clauses: count before copying them.
    var clauses = unions.reduce(0) { $0 + $1.count } + unions.count * intersection.count
    func tooLarge() -> ParseError {
      ParseError(
        message:
          "the selector \(SafeText.quoted(text, limit: 60)) expands to more than \(maximumAlternatives) alternatives or \(maximumClauses) terms; expected fewer parts or shorter excluded comma groups.",
        offset: 0)
    }
    guard clauses <= maximumClauses else { throw tooLarge() }
    var alternatives = unions.map { $0 + intersection }
    for excluded in exclusions {
      // Not (a and b) is (not a) or (not b): each alternative splits into one per excluded term.
      let factor = max(1, excluded.count)
      clauses = (clauses + alternatives.count) * factor
      guard alternatives.count * factor <= maximumAlternatives, clauses <= maximumClauses else {
        throw tooLarge()
      }
      if excluded.isEmpty {
        alternatives = []
        continue
      }
      var next: [[Clause]] = []
      for alternative in alternatives {
        for clause in excluded {
          var flipped = clause
          flipped.negated.toggle()
          next.append(alternative + [flipped])
        }
      }
      alternatives = next
    }
    return (alternatives, conjunctions)
  }

  /// The parts of a selector, split at the `:` that join them.
  static func split(_ s: [Unicode.Scalar], text: String) throws(ParseError) -> [Part] {
    var parts: [Part] = []
    var op = Operator.union
    var partStart = 0
    var termStart = 0
    var depth = 0
    var i = 0
    // Whether a plain ':' belongs to the term starting at `start` (a tag test or an IPv6 address),
    // decided over the term's extent (up to the next ',', ':&' or ':!' outside brackets) from
    // prefix counts, so the scan stays linear however many ':' there are.
    let n = s.count
    var boundary = [Int](repeating: n, count: n + 1)
    var equals = [Int](repeating: 0, count: n + 1)
    var colons = [Int](repeating: 0, count: n + 1)
    var others = [Int](repeating: 0, count: n + 1)
    var depths = [Int](repeating: 0, count: n)
    var level = 0
    for k in 0..<n {
      if s[k] == "[" { level += 1 } else if s[k] == "]" && level > 0 { level -= 1 }
      depths[k] = level
      equals[k + 1] = equals[k] + (s[k] == "=" ? 1 : 0)
      colons[k + 1] = colons[k] + (s[k] == ":" ? 1 : 0)
      let hexLike = s[k].properties.isASCIIHexDigit || s[k] == "." || s[k] == " " || s[k] == ":"
      others[k + 1] = others[k] + (hexLike ? 0 : 1)
    }
    for k in stride(from: n - 1, through: 0, by: -1) {
      let isBoundary =
        depths[k] == 0
        && (s[k] == "," || (s[k] == ":" && k + 1 < n && (s[k + 1] == "&" || s[k + 1] == "!")))
      boundary[k] = isBoundary ? k : boundary[k + 1]
    }
    func keepsColon(at colon: Int, inTermFrom start: Int) -> Bool {
      let end = boundary[start]
      if equals[end] - equals[start] > 0 {
        // A tag test: a ':' in its key stays; one in its value stays unless another tag test
        // (another '=') follows before the next ',', ':&' or ':!'.
        if equals[colon] - equals[start] == 0 { return true }
        return equals[end] - equals[colon + 1] == 0
      }
      return others[end] - others[start] == 0 && colons[end] - colons[start] >= 2
    }
    func offset(_ index: Int) -> Int {
      let stringIndex = text.unicodeScalars.index(text.unicodeScalars.startIndex, offsetBy: index)
      return text.distance(from: text.startIndex, to: stringIndex)
    }
    func close(at end: Int) throws(ParseError) {
      var start = partStart
      while start < end && s[start] == " " { start += 1 }
      guard start < end else {
        throw ParseError(
          message:
            "the selector '\(text)' has an empty part at offset \(offset(start)); expected a term like 'web', 'role=web' or 'web-*' on each side of ':', ':&' and ':!'.",
          offset: offset(start))
      }
      parts.append(Part(op: op, start: start, end: end))
    }
    while i < s.count {
      let c = s[i]
      if c == "[" {
        depth += 1
      } else if c == "]" && depth > 0 {
        depth -= 1
      } else if depth == 0 && c == "," {
        termStart = i + 1
      } else if depth == 0 && c == ":" {
        let next: Unicode.Scalar? = i + 1 < s.count ? s[i + 1] : nil
        if next == "&" || next == "!" {
          try close(at: i)
          op = next == "&" ? .intersection : .exclusion
          i += 2
          partStart = i
          termStart = i
          continue
        }
        if !keepsColon(at: i, inTermFrom: termStart) {
          try close(at: i)
          op = .union
          i += 1
          partStart = i
          termStart = i
          continue
        }
      }
      i += 1
    }
    try close(at: s.count)
    if parts.count > 1 {
      // Several parts: a leading '&' or '!' is the operator of its part, as in Ansible.
      for k in parts.indices where parts[k].op == .union {
        let first = s[parts[k].start]
        if first == "&"
          || (first == "!" && !(parts[k].start + 1 < parts[k].end && s[parts[k].start + 1] == "="))
        {
          parts[k].op = first == "&" ? .intersection : .exclusion
          parts[k].start += 1
          guard parts[k].start < parts[k].end else {
            throw ParseError(
              message:
                "the selector '\(text)' has '\(first)' with no term after it at offset \(offset(parts[k].start)); expected a term like 'web' or 'role=web'.",
              offset: offset(parts[k].start))
          }
        }
      }
    } else if s[parts[0].start] == "&" {
      parts[0].op = .intersection
      parts[0].start += 1
      guard parts[0].start < parts[0].end else {
        throw ParseError(
          message:
            "the selector '\(text)' has '&' with no term after it; expected a term like 'web' or 'role=web'.",
          offset: offset(parts[0].start))
      }
    }
    return parts
  }

  /// Parses one comma group starting `base` scalars into `whole` (for offsets).
  static func parseConjunction(_ text: String, in whole: String, at base: Int) throws(ParseError)
    -> (clauses: [Clause], terms: Int)
  {
    func offset(_ scalarIndex: Int) -> Int {
      let index = whole.unicodeScalars.index(whole.unicodeScalars.startIndex, offsetBy: base + scalarIndex)
      return whole.distance(from: whole.startIndex, to: index)
    }
    var clauses: [Clause] = []
    var start = 0
    let scalars = Array(text.unicodeScalars)
    var termStarts: [Int] = []
    var terms: [String] = []
    var depth = 0
    var current = String.UnicodeScalarView()
    for (k, c) in scalars.enumerated() {
      if c == "[" { depth += 1 } else if c == "]" && depth > 0 { depth -= 1 }
      if c == "," && depth == 0 {
        termStarts.append(start)
        terms.append(String(current))
        current = String.UnicodeScalarView()
        start = k + 1
      } else {
        current.append(c)
      }
    }
    termStarts.append(start)
    terms.append(String(current))
    for (raw, rawStart) in zip(terms, termStarts) {
      var term = raw.trimmingWhitespace()
      // Counted only for an error: counting characters for every term would be quadratic.
      var termOffset: Int { offset(rawStart + raw.unicodeScalars.prefix { $0 == " " }.count) }
      guard !term.isEmpty else {
        throw ParseError(
          message:
            "the selector '\(whole)' has an empty term; expected terms like 'web', 'role=web' or 'web-*' joined by commas.",
          offset: termOffset)
      }
      var negated = false
      if term.hasPrefix("!") && !term.hasPrefix("!=") {
        negated = true
        term.removeFirst()
        term = term.trimmingWhitespace()
      }
      if let range = term.range(of: "!=") ?? term.range(of: "=") {
        let key = String(term[..<range.lowerBound]).trimmingWhitespace()
        let value = String(term[range.upperBound...]).trimmingWhitespace()
        let equal = term[range] == "="
        guard !key.isEmpty, isName(key) else {
          throw ParseError(
            message:
              "the selector term '\(term)' has an invalid tag name; expected 'tag=value' with a tag made of letters, digits, '-', '_', '.', ':' or '/'.",
            offset: termOffset)
        }
        guard !value.contains("=") else {
          throw ParseError(
            message:
              "the selector term '\(term)' has more than one '='; expected 'tag=value' (a ':' in a tag's key is part of it, so 'db:role=web' is the tag 'db:role': for hosts matching a name or a tag test, use a YAML list or a second --limit).",
            offset: termOffset)
        }
        clauses.append(Clause(term: .tag(key: key, value: value, equal: equal), negated: negated, text: term))
      } else if term == "all" || term == "*" {
        clauses.append(Clause(term: .all, negated: negated, text: term))
      } else {
        var name = term
        // A bracketed IPv6 address names the host by its address.
        if name.hasPrefix("["), name.hasSuffix("]"), name.contains(":") {
          name = String(name.dropFirst().dropLast())
        }
        guard isName(name, allowGlob: true) else {
          throw ParseError(
            message:
              "the selector term '\(term)' is not a valid group or host name; expected letters, digits, '-', '_', '.', ':' or a glob ('*', '?').",
            offset: termOffset)
        }
        clauses.append(Clause(term: .name(name), negated: negated, text: term))
      }
    }
    if clauses.allSatisfy(\.negated) {
      // "!web" alone means every host but the web group.
      clauses.insert(Clause(term: .all, negated: false, text: "all"), at: 0)
    }
    return (clauses, terms.count)
  }

  /// A sentence on how the selector's terms combine, for when it picks no host: a comma group
  /// of several terms is an AND. `repeating` says how else to write a union where it is read
  /// (like "pass --limit once for each").
  public func combinationHint(repeating: String) -> String? {
    guard let group = conjunctions.first else { return nil }
    let terms = group.split(separator: ",").map { String($0).trimmingWhitespace() }
    guard terms.count > 1 else { return nil }
    // Names join with ':', and so do tag tests; a name next to a tag test would be read into it.
    let tags = terms.filter { $0.contains("=") }.count
    let either =
      tags == 0 || tags == terms.count
      ? "write '\(terms.joined(separator: ":"))' or \(repeating)" : repeating
    return "'\(group)' means \(terms.joined(separator: " AND ")); for any of them, \(either)"
  }

  /// Whether the selector picks a host with `tags`, where `isNamed(name)` says whether a name term
  /// (a host, a group, a glob: the caller knows which it can be) names the host.
  public func matches(tags: [String: String], isNamed: (String) -> Bool) -> Bool {
    alternatives.contains { clauses in
      clauses.allSatisfy { clause in
        let hit: Bool
        switch clause.term {
        case .all: hit = true
        case .name(let name): hit = isNamed(name)
        case .tag(let key, let value, let equal): hit = Self.tag(key, value, equal: equal, in: tags)
        }
        return hit != clause.negated
      }
    }
  }

  /// Whether `tags` satisfy the term `key=value` (`equal`) or `key!=value`; values may be globs,
  /// and a missing tag equals nothing.
  public static func tag(_ key: String, _ value: String, equal: Bool, in tags: [String: String]) -> Bool {
    let matched = tags[key].map { Glob.matches(value, $0) } ?? false
    return equal ? matched : !matched
  }

  /// Whether `text` is a valid group, host or tag name (or glob, with `allowGlob`).
  public static func isName(_ text: String, allowGlob: Bool = false) -> Bool {
    !text.isEmpty
      && text.unicodeScalars.allSatisfy { c in
        c.properties.isAlphabetic || ("0"..."9").contains(c) || "-_.:/@".unicodeScalars.contains(c)
          || (allowGlob && "*?[]".unicodeScalars.contains(c))
      }
  }
}

/// Shell-style glob matching (`*`, `?`, `[abc]`) used by selectors.
public enum Glob {
  public static func isPattern(_ text: String) -> Bool {
    text.contains { $0 == "*" || $0 == "?" || $0 == "[" }
  }

  public static func matches(_ pattern: String, _ text: String) -> Bool {
    if !isPattern(pattern) { return pattern == text }
    return match(Array(pattern.unicodeScalars)[...], Array(text.unicodeScalars)[...])
  }

  private static func match(_ p: ArraySlice<Unicode.Scalar>, _ t: ArraySlice<Unicode.Scalar>) -> Bool {
    var p = p
    var t = t
    var starP: ArraySlice<Unicode.Scalar>? = nil
    var starT: ArraySlice<Unicode.Scalar>? = nil
    while !t.isEmpty {
      if let c = p.first {
        if c == "*" {
          p = p.dropFirst()
          starP = p
          starT = t
          continue
        }
        if c == "?" {
          p = p.dropFirst()
          t = t.dropFirst()
          continue
        }
        if c == "[", let close = p.dropFirst().firstIndex(of: "]") {
          let set = p[(p.startIndex + 1)..<close]
          if set.contains(t.first!) {
            p = p[(close + 1)...]
            t = t.dropFirst()
            continue
          }
        } else if c == t.first {
          p = p.dropFirst()
          t = t.dropFirst()
          continue
        }
      }
      guard let sp = starP, let st = starT, !st.isEmpty else { return false }
      p = sp
      t = st.dropFirst()
      starT = t
    }
    return p.allSatisfy { $0 == "*" }
  }
}
