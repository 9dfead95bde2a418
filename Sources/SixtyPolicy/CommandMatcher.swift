import Foundation
import SixtyCore

/// What a deny rule is checked against: a `command:` argument list (run without a shell), shell
/// text (`shell:`, a script's contents), or text that runs no command of its own (an upload).
public enum CommandSubject: Sendable, Hashable {
  /// The arguments, and how they read as one line (quoted word by word) for regex rules.
  case argv([String], text: String)
  case shell(String)
  case text(String)

  /// The subject as text, for regex rules.
  public var text: String {
    switch self {
    case .argv(_, let text), .shell(let text), .text(let text): text
    }
  }
}

/// Why policy refuses a command: a rule it matches, or shell text Sixty cannot check.
public enum CommandRefusal: Sendable, Hashable {
  case rule(CommandRule)
  /// The shell text could not be split into commands (an unbalanced quote, say), so it cannot be
  /// checked against the literal deny rules: refused rather than guessed at.
  case unparsable(String)
}

/// Compiled command rules, checked against rendered commands.
///
/// A literal rule (`rm -rf /`) is parsed like shell text and matches commands, not text: a
/// command matches when its name is the rule's (`/bin/rm` is `rm`), it has every option of the
/// rule in any spelling (`-fr`, `-r -f`, `-R`, `--recursive --force`, after the operands), and
/// every operand of the rule is among its own. Commands are found across `;`, `&&`, `|`, `$( )`,
/// subshells, and through `sudo`, `env`, `timeout`, `sh -c` and the like (see
/// `CommandExtraction`). A rule of several commands (`curl x | sh`) matches when each of them
/// does. A regex rule matches the command's text.
// Sendable: the rules are immutable, and NSRegularExpression is thread-safe for matching.
public struct CommandMatcher: @unchecked Sendable {
  private enum Compiled {
    case words([CommandWords])
    /// A literal that is not valid shell (the policy parser reports it): matched as text.
    case text(String)
    case regex(NSRegularExpression?)
  }
  private let rules: [(CommandRule, Compiled)]
  private let hasLiterals: Bool

  public init(_ rules: [CommandRule]) {
    self.rules = rules.map { rule in
      switch rule.pattern {
      case .literal(let text):
        if let commands = try? CommandExtraction.commands(shell: text), !commands.isEmpty {
          return (rule, .words(commands))
        }
        return (rule, .text(CommandMatcher.normalise(text)))
      case .regex(let text):
        return (rule, .regex(try? NSRegularExpression(pattern: text)))
      }
    }
    hasLiterals = rules.contains { if case .literal = $0.pattern { true } else { false } }
  }

  public var isEmpty: Bool { rules.isEmpty }

  /// Why policy refuses `subject`, if it does: the first rule it matches, or shell text that
  /// cannot be checked against the literal rules.
  public func refusal(for subject: CommandSubject) -> CommandRefusal? {
    guard !rules.isEmpty else { return nil }
    var commands: [CommandWords] = []
    var problem: String?
    if hasLiterals {
      do {
        switch subject {
        case .argv(let argv, _): commands = try CommandExtraction.commands(argv: argv)
        case .shell(let text): commands = try CommandExtraction.commands(shell: text)
        case .text: break
        }
      } catch {
        problem = error.message
      }
    }
    let text = subject.text
    lazy var normalised = CommandMatcher.normalise(text)
    for (rule, compiled) in rules {
      switch compiled {
      case .words(let ruleCommands):
        if problem == nil, ruleCommands.allSatisfy({ r in commands.contains { $0.matches(r) } }) {
          return .rule(rule)
        }
      case .text(let literal):
        if normalised.contains(literal) { return .rule(rule) }
      case .regex(let regex):
        if let regex, regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil {
          return .rule(rule)
        }
      }
    }
    if let problem { return .unparsable(problem) }
    return nil
  }

  /// The first rule that refuses `command` (shell text), if any.
  public func firstMatch(_ command: String) -> CommandRule? {
    if case .rule(let rule) = refusal(for: .shell(command)) { return rule }
    return nil
  }

  /// Why `text` cannot be a literal deny rule (it is not shell words Sixty can parse), or nil.
  public static func literalProblem(_ text: String) -> String? {
    do {
      return try CommandExtraction.commands(shell: text).isEmpty ? "it names no command" : nil
    } catch {
      return error.message
    }
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
