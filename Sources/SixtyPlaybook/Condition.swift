import SixtyCore

/// A `when:` condition: comparisons of variables, host facts and literals joined by
/// `and`, `or`, `not` and parentheses.
///
/// Grammar: `a == 'x'`, `a != 'x'`, `a in ['x', 'y']`, `a not in [...]`, `a is defined`,
/// `a is not defined`, a bare `a` (truthy), `true`, `false`.
public indirect enum Condition: Hashable, Sendable {
  case value(Operand)
  case not(Condition)
  case and(Condition, Condition)
  case or(Condition, Condition)
  case equal(Operand, Operand, negated: Bool)
  case member(Operand, [Operand], negated: Bool)
  case defined(Variable, negated: Bool)

  public struct Variable: Hashable, Sendable {
    public var path: [String]
    public var location: SourceLocation
    public var text: String { path.joined(separator: ".") }
  }

  public enum Operand: Hashable, Sendable {
    case literal(String)
    case variable(Variable)
  }

  /// Every variable the condition reads outside `is defined` tests.
  public var requiredVariables: [Variable] {
    switch self {
    case .value(let operand): operand.variables
    case .not(let inner): inner.requiredVariables
    case .and(let a, let b), .or(let a, let b): a.requiredVariables + b.requiredVariables
    case .equal(let a, let b, _): a.variables + b.variables
    case .member(let a, let list, _): a.variables + list.flatMap(\.variables)
    case .defined: []
    }
  }

  /// Evaluates the condition; an undefined variable outside `is defined` throws.
  public func evaluate(in scope: VariableScope) throws(Template.Unresolved) -> Bool {
    switch self {
    case .value(let operand): return try operand.value(in: scope).isTruthy
    case .not(let inner): return try !inner.evaluate(in: scope)
    case .and(let a, let b):
      guard try a.evaluate(in: scope) else { return false }
      return try b.evaluate(in: scope)
    case .or(let a, let b):
      if try a.evaluate(in: scope) { return true }
      return try b.evaluate(in: scope)
    case .equal(let a, let b, let negated):
      return try (a.value(in: scope).description == b.value(in: scope).description) != negated
    case .member(let a, let list, let negated):
      let needle = try a.value(in: scope)
      var found = false
      for item in list {
        let candidate = try item.value(in: scope)
        if case .list(let values) = candidate {
          if values.contains(where: { $0.description == needle.description }) { found = true }
        } else if candidate.description == needle.description {
          found = true
        }
      }
      return found != negated
    case .defined(let variable, let negated):
      return (scope.lookup(variable.path) != nil) != negated
    }
  }

  // MARK: - Parsing

  /// Parses a condition; `location` is where the text starts, for diagnostics.
  public static func parse(_ text: String, at node: YAMLNode) -> Result<Condition, ConditionError> {
    var parser = ConditionParser(text: text, node: node)
    return parser.parseAll()
  }
}

public struct ConditionError: Error, Sendable {
  public var message: String
  public var location: SourceLocation
}

extension Condition.Operand {
  var variables: [Condition.Variable] {
    if case .variable(let v) = self { return [v] }
    return []
  }

  func value(in scope: VariableScope) throws(Template.Unresolved) -> Value {
    switch self {
    case .literal(let text): return .string(text)
    case .variable(let variable):
      guard let value = scope.lookup(variable.path) else {
        throw Template.Unresolved(
          expression: Template.Expression(
            path: variable.path, literal: nil, filters: [], location: variable.location, text: variable.text))
      }
      return value
    }
  }
}

struct ConditionParser {
  enum Token: Equatable {
    case word(String)
    case string(String)
    case symbol(String)
    case end
  }

  let text: String
  let node: YAMLNode
  var tokens: [(Token, Int)] = []
  var index = 0

  init(text: String, node: YAMLNode) {
    self.text = text
    self.node = node
  }

  func location(_ offset: Int) -> SourceLocation { node.location(ofCharacter: offset) }

  mutating func tokenize() -> ConditionError? {
    let chars = Array(text)
    var i = 0
    while i < chars.count {
      let c = chars[i]
      if c == " " || c == "\t" || c == "\n" {
        i += 1
      } else if c == "'" || c == "\"" {
        var j = i + 1
        while j < chars.count && chars[j] != c { j += 1 }
        guard j < chars.count else {
          return ConditionError(
            message: "a string in the condition is never closed; expected a closing \(c).",
            location: location(i))
        }
        tokens.append((.string(String(chars[(i + 1)..<j])), i))
        i = j + 1
      } else if c == "=" || c == "!" {
        guard i + 1 < chars.count, chars[i + 1] == "=" else {
          return ConditionError(
            message: "unexpected '\(c)' in the condition; expected '==' or '!='.", location: location(i))
        }
        tokens.append((.symbol(String([c, "="])), i))
        i += 2
      } else if "()[],".contains(c) {
        tokens.append((.symbol(String(c)), i))
        i += 1
      } else if c.isLetter || c.isNumber || c == "_" || c == "." || c == "-" {
        var j = i
        while j < chars.count && (chars[j].isLetter || chars[j].isNumber || "_.-".contains(chars[j])) {
          j += 1
        }
        tokens.append((.word(String(chars[i..<j])), i))
        i = j
      } else {
        return ConditionError(message: "unexpected '\(c)' in the condition.", location: location(i))
      }
    }
    tokens.append((.end, chars.count))
    return nil
  }

  var current: Token { tokens[index].0 }
  var offset: Int { tokens[index].1 }

  mutating func parseAll() -> Result<Condition, ConditionError> {
    if let error = tokenize() { return .failure(error) }
    do {
      let condition = try parseOr()
      guard current == .end else {
        throw ConditionError(
          message: "unexpected \(describe(current)) in the condition; expected 'and', 'or' or the end.",
          location: location(offset))
      }
      return .success(condition)
    } catch let error as ConditionError {
      return .failure(error)
    } catch {
      return .failure(ConditionError(message: "\(error)", location: node.location))
    }
  }

  func describe(_ token: Token) -> String {
    switch token {
    case .word(let w): "'\(w)'"
    case .string(let s): "the string '\(s)'"
    case .symbol(let s): "'\(s)'"
    case .end: "the end of the condition"
    }
  }

  mutating func parseOr() throws -> Condition {
    try parseChain(of: { try $0.parseAnd() }, joinedBy: "or", Condition.or)
  }

  mutating func parseAnd() throws -> Condition {
    try parseChain(of: { try $0.parseNot() }, joinedBy: "and", Condition.and)
  }

  /// `operand (word operand)*`, joined from the left with `join`.
  mutating func parseChain(
    of operand: (inout Self) throws -> Condition, joinedBy word: String,
    _ join: (Condition, Condition) -> Condition
  ) throws -> Condition {
    var left = try operand(&self)
    while current == .word(word) {
      index += 1
      left = join(left, try operand(&self))
    }
    return left
  }

  mutating func parseNot() throws -> Condition {
    if current == .word("not") {
      index += 1
      return .not(try parseNot())
    }
    return try parseComparison()
  }

  mutating func parseComparison() throws -> Condition {
    if current == .symbol("(") {
      let opened = offset
      index += 1
      let inner = try parseOr()
      guard current == .symbol(")") else {
        throw ConditionError(
          message: current == .end
            ? "unclosed '(' opened at column \(location(opened).column)\(lineOf(opened)); expected ')' before the end of the condition."
            : "expected ')' to close the '(' opened at column \(location(opened).column)\(lineOf(opened)) but found \(describe(current)).",
          location: location(offset))
      }
      index += 1
      return inner
    }
    let left = try parseOperand()
    switch current {
    case .symbol("=="), .symbol("!="):
      let negated = current == .symbol("!=")
      index += 1
      return .equal(left, try parseOperand(), negated: negated)
    case .word("in"):
      index += 1
      return .member(left, try parseList(), negated: false)
    case .word("not"):
      index += 1
      guard current == .word("in") else {
        throw ConditionError(
          message: "expected 'in' after 'not' but found \(describe(current)).", location: location(offset))
      }
      index += 1
      return .member(left, try parseList(), negated: true)
    case .word("is"):
      index += 1
      var negated = false
      if current == .word("not") {
        negated = true
        index += 1
      }
      guard current == .word("defined"), case .variable(let variable) = left else {
        throw ConditionError(
          message: "expected 'is defined' or 'is not defined' after a variable name.",
          location: location(offset))
      }
      index += 1
      return .defined(variable, negated: negated)
    default:
      return .value(left)
    }
  }

  /// " of line L" when the character at `opened` is on another line than the current token.
  func lineOf(_ opened: Int) -> String {
    let line = location(opened).line
    return line == location(offset).line ? "" : " of line \(line)"
  }

  mutating func parseList() throws -> [Condition.Operand] {
    if current == .symbol("[") {
      let opened = offset
      index += 1
      var items: [Condition.Operand] = []
      while current != .symbol("]") {
        if current == .end {
          throw ConditionError(
            message:
              "unclosed '[' opened at column \(location(opened).column)\(lineOf(opened)); expected ']' to end the list.",
            location: location(offset))
        }
        items.append(try parseOperand())
        if current == .symbol(",") {
          index += 1
        } else if current != .symbol("]") && current != .end {
          throw ConditionError(
            message: "expected ',' or ']' in the list but found \(describe(current)).",
            location: location(offset))
        }
      }
      index += 1
      return items
    }
    return [try parseOperand()]
  }

  mutating func parseOperand() throws -> Condition.Operand {
    let start = offset
    switch current {
    case .string(let s):
      index += 1
      return .literal(s)
    case .word(let w):
      index += 1
      if w == "true" || w == "false" || Double(w) != nil { return .literal(w) }
      if ["and", "or", "not", "in", "is"].contains(w) {
        throw ConditionError(
          message: "expected a value but found the keyword '\(w)'.", location: location(start))
      }
      let path = w.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
      guard path.allSatisfy({ Template.isIdentifier($0) }) else {
        throw ConditionError(message: "'\(w)' is not a variable name.", location: location(start))
      }
      return .variable(Condition.Variable(path: path, location: location(start)))
    default:
      throw ConditionError(
        message: "expected a value but found \(describe(current)).", location: location(start))
    }
  }
}
