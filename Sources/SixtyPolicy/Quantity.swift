import SixtyCore

/// A number of hosts written either as a count (`5`) or a percentage of the play's hosts (`25%`).
public enum Quantity: Hashable, Sendable, CustomStringConvertible {
  case count(Int)
  case percent(Int)

  /// Parses `5` or `25%`; nil when neither.
  public init?(parsing text: String) {
    let trimmed = text.trimmingWhitespace()
    if trimmed.hasSuffix("%") {
      guard let value = Int(String(trimmed.dropLast()).trimmingWhitespace()), (0...100).contains(value) else {
        return nil
      }
      self = .percent(value)
    } else {
      guard let value = Int(trimmed), value >= 0 else { return nil }
      self = .count(value)
    }
  }

  public var description: String {
    switch self {
    case .count(let n): "\(n)"
    case .percent(let p): "\(p)%"
    }
  }

  /// A batch size for `total` hosts: a percentage rounds down but is at least 1.
  public func batchSize(of total: Int) -> Int {
    switch self {
    case .count(let n): max(1, n)
    case .percent(let p): max(1, total * p / 100)
    }
  }

  /// A failure threshold for `total` hosts: a percentage rounds down (0% tolerates no failure).
  public func threshold(of total: Int) -> Int {
    switch self {
    case .count(let n): n
    case .percent(let p): total * p / 100
    }
  }
}
