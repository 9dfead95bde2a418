import Foundation
import SixtyCore

/// Compiled command rules, checked against rendered commands.
// Sendable: the rules are immutable, and NSRegularExpression is thread-safe for matching.
public struct CommandMatcher: @unchecked Sendable {
  // NSRegularExpression is immutable after creation and documented as thread-safe for matching.
  private let rules: [(CommandRule, NSRegularExpression?, String?)]

  public init(_ rules: [CommandRule]) {
    self.rules = rules.map { rule in
      switch rule.pattern {
      case .literal(let text):
        return (rule, nil, CommandMatcher.normalise(text))
      case .regex(let text):
        return (rule, try? NSRegularExpression(pattern: text), nil)
      }
    }
  }

  public var isEmpty: Bool { rules.isEmpty }

  /// The first rule that refuses `command`, if any.
  public func firstMatch(_ command: String) -> CommandRule? {
    guard !rules.isEmpty else { return nil }
    let normalised = CommandMatcher.normalise(command)
    for (rule, regex, literal) in rules {
      if let literal, normalised.contains(literal) { return rule }
      if let regex,
        regex.firstMatch(in: command, range: NSRange(command.startIndex..., in: command)) != nil
      {
        return rule
      }
    }
    return nil
  }

  /// Why `pattern` is not a valid regular expression, or nil when it is.
  public static func regexProblem(_ pattern: String) -> String? {
    do {
      _ = try NSRegularExpression(pattern: pattern)
      return nil
    } catch {
      return "expected an ICU regular expression"
    }
  }

  static func normalise(_ text: String) -> String {
    text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).joined(separator: " ")
  }
}

enum TimeZoneCheck {
  static func isKnown(_ name: String) -> Bool { TimeZone(identifier: name) != nil }
}
