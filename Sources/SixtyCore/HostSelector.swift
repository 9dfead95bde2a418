/// A target expression as written in `hosts:`, `--limit` and policy host rules.
///
/// A string is a comma-separated AND of terms; a list of strings is their union. A term is
/// `all`, a group name, a host name, a glob over host names (`web-*`), `tag=value` or
/// `tag!=value` (values may be globs), and any term may be negated with a leading `!`.
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

  public var description: String { text }

  /// Parses one selector string (an AND of comma-separated terms).
  /// - Throws: `HostSelector.ParseError` naming the bad term.
  public init(parsing text: String) throws(ParseError) {
    self.init(alternatives: [try Self.parseConjunction(text)], text: text)
  }

  /// Parses a union of selector strings.
  public init(union texts: [String]) throws(ParseError) {
    var alternatives: [[Clause]] = []
    for text in texts { alternatives.append(try Self.parseConjunction(text)) }
    self.init(alternatives: alternatives, text: texts.joined(separator: " | "))
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

  static func parseConjunction(_ text: String) throws(ParseError) -> [Clause] {
    var clauses: [Clause] = []
    var offset = 0
    for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
      defer { offset += raw.count + 1 }
      var term = String(raw).trimmingWhitespace()
      let termOffset = offset + (raw.count - raw.drop { $0 == " " }.count)
      guard !term.isEmpty else {
        throw ParseError(
          message:
            "the selector '\(text)' has an empty term; expected terms like 'web', 'role=web' or 'web-*' joined by commas.",
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
            message: "the selector term '\(term)' has more than one '='; expected 'tag=value'.",
            offset: termOffset)
        }
        clauses.append(Clause(term: .tag(key: key, value: value, equal: equal), negated: negated, text: term))
      } else if term == "all" || term == "*" {
        clauses.append(Clause(term: .all, negated: negated, text: term))
      } else {
        guard isName(term, allowGlob: true) else {
          throw ParseError(
            message:
              "the selector term '\(term)' is not a valid group or host name; expected letters, digits, '-', '_', '.', ':' or a glob ('*', '?').",
            offset: termOffset)
        }
        clauses.append(Clause(term: .name(term), negated: negated, text: term))
      }
    }
    if clauses.allSatisfy(\.negated) {
      // "!web" alone means every host but the web group.
      clauses.insert(Clause(term: .all, negated: false, text: "all"), at: 0)
    }
    return clauses
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
