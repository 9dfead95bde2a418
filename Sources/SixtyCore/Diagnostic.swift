/// A position in a source file, 1-based, as printed in diagnostics.
public struct SourceLocation: Hashable, Sendable, Comparable, CustomStringConvertible {
  public var file: String
  public var line: Int
  public var column: Int

  public init(file: String, line: Int, column: Int) {
    self.file = file
    self.line = line
    self.column = column
  }

  /// `FILE:LINE:COL`.
  public var description: String { "\(file):\(line):\(column)" }

  public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
    (lhs.file, lhs.line, lhs.column) < (rhs.file, rhs.line, rhs.column)
  }

  /// The location `offset` columns to the right on the same line.
  public func advanced(by offset: Int) -> SourceLocation {
    SourceLocation(file: file, line: line, column: column + offset)
  }
}

/// One problem found in user input.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible {
  public enum Severity: String, Sendable, Hashable, Comparable {
    case error
    case warning
    case note

    private var rank: Int {
      switch self {
      case .error: 0
      case .warning: 1
      case .note: 2
      }
    }

    public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
  }

  /// What kind of problem this is; a policy refusal exits 3 rather than 2.
  public enum Kind: String, Sendable, Hashable {
    case input
    case policy
  }

  public var severity: Severity
  public var kind: Kind
  public var location: SourceLocation?
  public var message: String

  public init(
    _ severity: Severity, _ message: String, at location: SourceLocation?, kind: Kind = .input
  ) {
    self.severity = severity
    self.message = message
    self.location = location
    self.kind = kind
  }

  public static func error(_ message: String, at location: SourceLocation?, kind: Kind = .input)
    -> Diagnostic
  {
    Diagnostic(.error, message, at: location, kind: kind)
  }

  public static func warning(_ message: String, at location: SourceLocation?) -> Diagnostic {
    Diagnostic(.warning, message, at: location)
  }

  public static func note(_ message: String, at location: SourceLocation?) -> Diagnostic {
    Diagnostic(.note, message, at: location)
  }

  /// `FILE:LINE:COL: error: message`, or `sixty: error: message` without a location.
  public var description: String {
    let prefix = location.map { "\($0)" } ?? "sixty"
    return "\(prefix): \(severity.rawValue): \(message)"
  }
}

/// Collects diagnostics in the order they are found.
public struct DiagnosticBag: Sendable {
  public private(set) var all: [Diagnostic] = []

  public init() {}

  public mutating func append(_ diagnostic: Diagnostic) { all.append(diagnostic) }
  public mutating func append(contentsOf other: [Diagnostic]) { all.append(contentsOf: other) }

  public mutating func error(_ message: String, at location: SourceLocation?, kind: Diagnostic.Kind = .input)
  {
    all.append(.error(message, at: location, kind: kind))
  }

  public mutating func warning(_ message: String, at location: SourceLocation?) {
    all.append(.warning(message, at: location))
  }

  public var hasErrors: Bool { all.contains { $0.severity == .error } }
  public var errors: [Diagnostic] { all.filter { $0.severity == .error } }

  /// Sorted by file position (diagnostics without a location first), stable otherwise.
  public var sorted: [Diagnostic] {
    all.enumerated().sorted { a, b in
      switch (a.element.location, b.element.location) {
      case (nil, nil): return a.offset < b.offset
      case (nil, _): return true
      case (_, nil): return false
      case (let l?, let r?): return l == r ? a.offset < b.offset : l < r
      }
    }.map(\.element)
  }
}

/// Thrown when input has errors; carries every diagnostic found, warnings included.
public struct DiagnosticsError: Error, Sendable, CustomStringConvertible {
  public var diagnostics: [Diagnostic]

  public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

  /// Exit code 3 when every error is a policy refusal, 2 otherwise.
  public var exitCode: Int32 {
    let errors = diagnostics.filter { $0.severity == .error }
    return !errors.isEmpty && errors.allSatisfy { $0.kind == .policy } ? 3 : 2
  }

  public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
