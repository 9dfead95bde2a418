import SixtyCore

/// Advice that `sixty validate` gives on a playbook that is valid as written.
public enum PlaybookLint {
  /// Host facts that the inventory checks to be plain words (names, addresses, ports, users):
  /// safe in a shell command without `| quote`.
  static let checkedFacts: Set<[String]> = [
    ["host", "name"], ["host", "address"], ["host", "port"], ["host", "user"],
  ]

  /// A warning for every `{{ value }}` that a `shell:` command inserts without `| quote`: the
  /// shell parses whatever the value holds (spaces, quotes, `;`, `$(…)`), so a hostile or merely
  /// unusual value becomes a different command.
  public static func unquotedShellValues(_ playbook: Playbook) -> [Diagnostic] {
    var warnings: [Diagnostic] = []
    for play in playbook.plays {
      for task in play.tasks {
        guard case .shell(let template) = task.action else { continue }
        for segment in template.segments {
          guard case .expression(let expression) = segment, expression.literal == nil,
            !expression.filters.contains(.quote), !checkedFacts.contains(expression.path)
          else { continue }
          let name = expression.text
          warnings.append(
            .warning(
              "'{{ \(name) }}' is inserted into the shell command of task '\(task.name)' unquoted: a value with spaces, quotes, ';' or '$(…)' would be read as shell syntax; write '{{ \(name) | quote }}' (or use 'command:', whose arguments are never parsed by a shell).",
              at: expression.location))
        }
      }
    }
    return warnings
  }
}
