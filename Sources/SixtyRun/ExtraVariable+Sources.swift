import SixtyCore
import SixtyPlaybook

extension ExtraVariable {
  /// The variables of one `-e` argument: `KEY=VALUE`, `@FILE` (a YAML or JSON mapping of
  /// variables) or an inline JSON object (`{"version": "1.2", "ports": [80, 443]}`). Values keep
  /// their shape (lists, mappings) and scalars are kept as written.
  /// - Throws: `RunFailure` (bad input) naming the file, line and column, or the argument, at fault.
  public static func parseAll(_ entry: String) throws(RunFailure) -> [ExtraVariable] {
    if entry.hasPrefix("@") {
      let path = String(entry.dropFirst())
      guard !path.isEmpty else {
        throw RunFailure(
          "-e @ names no file; expected -e @vars.yml (a YAML or JSON mapping of variables).",
          status: .badInput)
      }
      let (root, diagnostics) = YAMLLoader.load(path: path)
      return try variables(root, diagnostics, source: path, what: "the variables file \(path)")
    }
    if entry.unicodeScalars.first(where: { $0 != " " && $0 != "\t" && $0 != "\n" }) == "{" {
      let (root, diagnostics) = YAMLLoader.parse(text: entry, file: "-e")
      return try variables(root, diagnostics, source: "-e", what: "the -e JSON object")
    }
    return [try ExtraVariable(parsing: entry)]
  }

  static func variables(_ root: YAMLNode?, _ diagnostics: [Diagnostic], source: String, what: String)
    throws(RunFailure) -> [ExtraVariable]
  {
    if let error = diagnostics.first(where: { $0.severity == .error }) {
      throw RunFailure((error.location.map { "\($0): " } ?? "") + error.message, status: .badInput)
    }
    guard let root else {
      throw RunFailure(
        "\(source):1:1: \(what) is empty; expected a mapping of variable names to values.", status: .badInput)
    }
    guard let pairs = root.pairs else {
      throw RunFailure(
        "\(root.location): \(what) is \(root.kindDescription); expected a mapping of variable names to values, like {\"version\": \"1.2\"}.",
        status: .badInput)
    }
    var result: [ExtraVariable] = []
    var seen: Set<String> = []
    for pair in pairs {
      guard isVariableName(pair.key) else {
        throw RunFailure(
          "\(pair.keyLocation): the variable name \(SafeText.quoted(pair.key)) is not valid; expected letters, digits and '_' (not starting with a digit, and not 'host').",
          status: .badInput)
      }
      guard seen.insert(pair.key).inserted else {
        throw RunFailure(
          "\(pair.keyLocation): the variable '\(pair.key)' is set twice in \(what); expected each name once.",
          status: .badInput)
      }
      result.append(ExtraVariable(name: pair.key, value: Value(pair.value)))
    }
    return result
  }

  /// Letters, digits and '_', not starting with a digit, and not `host`; checked on Unicode scalars.
  static func isVariableName(_ key: String) -> Bool {
    func isLetter(_ scalar: Unicode.Scalar) -> Bool { scalar == "_" || scalar.properties.isAlphabetic }
    let scalars = key.unicodeScalars
    guard let first = scalars.first, isLetter(first) else { return false }
    return scalars.allSatisfy { isLetter($0) || $0.properties.numericType != nil } && key != "host"
  }
}
