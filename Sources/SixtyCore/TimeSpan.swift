/// A length of time written as `500ms`, `30s`, `10m`, `1h30m`, `2d` or a plain number of seconds.
public struct TimeSpan: Hashable, Sendable, Comparable, CustomStringConvertible {
  public var milliseconds: Int64

  public init(milliseconds: Int64) { self.milliseconds = milliseconds }
  public static func seconds(_ s: Int64) -> TimeSpan { TimeSpan(milliseconds: s * 1000) }
  public static func minutes(_ m: Int64) -> TimeSpan { .seconds(m * 60) }
  public static func hours(_ h: Int64) -> TimeSpan { .seconds(h * 3600) }

  public var seconds: Double { Double(milliseconds) / 1000 }

  public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool { lhs.milliseconds < rhs.milliseconds }

  /// Parses `text`; returns nil when it is not a valid, non-negative length of time.
  public init?(parsing text: String) {
    let trimmed = text.trimmingWhitespace()
    guard !trimmed.isEmpty else { return nil }
    if let plain = Int64(trimmed) {
      guard plain >= 0, plain < Int64.max / 1000 else { return nil }
      self.milliseconds = plain * 1000
      return
    }
    var total: Int64 = 0
    var number: Int64? = nil
    var chars = Array(trimmed.unicodeScalars)[...]
    var units: [String] = []
    while let c = chars.first {
      if let digit = c.properties.numericType != nil ? Int64(String(c)) : nil {
        let (m, o1) = (number ?? 0).multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(digit)
        guard !o1, !o2 else { return nil }
        number = a
        chars.removeFirst()
        continue
      }
      guard let value = number else { return nil }
      var unit = ""
      while let u = chars.first, u.properties.isAlphabetic {
        unit.unicodeScalars.append(u)
        chars.removeFirst()
      }
      let factor: Int64
      switch unit {
      case "ms": factor = 1
      case "s": factor = 1000
      case "m": factor = 60_000
      case "h": factor = 3_600_000
      case "d": factor = 86_400_000
      default: return nil
      }
      guard !units.contains(unit) else { return nil }
      units.append(unit)
      let (product, overflow) = value.multipliedReportingOverflow(by: factor)
      guard !overflow else { return nil }
      total += product
      number = nil
    }
    guard number == nil else { return nil }
    self.milliseconds = total
  }

  /// The shortest exact form, e.g. `1h30m`, `45s`, `250ms`.
  public var description: String {
    if milliseconds == 0 { return "0s" }
    var rest = milliseconds
    var parts = ""
    for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
      if rest >= size {
        parts += "\(rest / size)\(unit)"
        rest %= size
      }
    }
    return parts
  }
}

extension String {
  /// The string without leading and trailing spaces, tabs and newlines.
  public func trimmingWhitespace() -> String {
    let scalars = unicodeScalars
    guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
    let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
    return String(scalars[start...end])
  }
}
