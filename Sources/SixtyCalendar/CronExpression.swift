import Foundation

/// A standard 5-field cron expression with Vixie cron semantics: lists, ranges, steps, month and
/// day names, `@daily`-style macros, Sunday as 0 or 7, and day-of-month OR day-of-week when both
/// are restricted.
public struct CronExpression: Sendable, Equatable, CustomStringConvertible {
  public let minutes: Set<Int>
  public let hours: Set<Int>
  public let daysOfMonth: Set<Int>
  public let months: Set<Int>
  /// 0 = Sunday … 6 = Saturday.
  public let daysOfWeek: Set<Int>
  let domRestricted: Bool
  let dowRestricted: Bool
  public let description: String

  public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
  }

  static let macros: [String: String] = [
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
  ]
  static let monthNames = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
  ]
  static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

  public init(parsing text: String) throws(ParseError) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    let expanded: String
    if trimmed.hasPrefix("@") {
      guard let macro = CronExpression.macros[trimmed.lowercased()] else {
        throw ParseError(
          "'\(trimmed)' is not a cron macro; expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly."
        )
      }
      expanded = macro
    } else {
      expanded = trimmed
    }
    let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    guard fields.count == 5 else {
      throw ParseError(
        "'\(trimmed)' has \(fields.count) field\(fields.count == 1 ? "" : "s"); expected 5 (minute hour day-of-month month day-of-week) or a macro like @daily."
      )
    }
    minutes = try CronExpression.field(fields[0], "minute", 0...59, names: [])
    hours = try CronExpression.field(fields[1], "hour", 0...23, names: [])
    daysOfMonth = try CronExpression.field(fields[2], "day-of-month", 1...31, names: [])
    months = try CronExpression.field(
      fields[3], "month", 1...12, names: CronExpression.monthNames, nameBase: 1)
    var dow = try CronExpression.field(fields[4], "day-of-week", 0...7, names: CronExpression.dayNames)
    if dow.remove(7) != nil { dow.insert(0) }
    daysOfWeek = dow
    domRestricted = !fields[2].hasPrefix("*")
    dowRestricted = !fields[4].hasPrefix("*")
    description = trimmed
  }

  static func field(
    _ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String], nameBase: Int = 0
  )
    throws(ParseError) -> Set<Int>
  {
    var values = Set<Int>()
    func number(_ part: Substring) throws(ParseError) -> Int {
      if let value = Int(part), range.contains(value) { return value }
      if let index = names.firstIndex(of: part.lowercased()) { return index + nameBase }
      throw ParseError(
        "'\(part)' is not a valid \(name) in '\(text)'; expected \(range.lowerBound)-\(range.upperBound)\(names.isEmpty ? "" : " or a name like \(names[0])")."
      )
    }
    for item in text.split(separator: ",", omittingEmptySubsequences: false) {
      guard !item.isEmpty else { throw ParseError("the \(name) field '\(text)' has an empty list item.") }
      let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
      guard pieces.count <= 2 else {
        throw ParseError("'\(item)' has more than one '/' in the \(name) field.")
      }
      var step = 1
      if pieces.count == 2 {
        guard let value = Int(pieces[1]), value > 0 else {
          throw ParseError("the step '\(pieces[1])' in the \(name) field must be a positive number.")
        }
        step = value
      }
      let base = pieces[0]
      var low: Int
      var high: Int
      if base == "*" {
        low = range.lowerBound
        high = range.upperBound == 7 ? 6 : range.upperBound
      } else if let dash = base.firstIndex(of: "-") {
        low = try number(base[..<dash])
        high = try number(base[base.index(after: dash)...])
        guard low <= high else {
          throw ParseError("the range '\(base)' in the \(name) field runs backwards; expected low-high.")
        }
      } else {
        low = try number(base)
        high = pieces.count == 2 ? (range.upperBound == 7 ? 6 : range.upperBound) : low
      }
      for value in stride(from: low, through: high, by: step) { values.insert(value) }
    }
    return values
  }

  /// Whether the expression fires at the minute `components` describe (local wall time).
  public func matches(minute: Int, hour: Int, day: Int, month: Int, weekday: Int) -> Bool {
    guard minutes.contains(minute), hours.contains(hour), months.contains(month) else { return false }
    let dom = daysOfMonth.contains(day)
    let dow = daysOfWeek.contains(weekday)
    if domRestricted && dowRestricted { return dom || dow }
    return dom && dow
  }
}

/// A schedule: 5-field cron (or a macro), AWS `cron(…)`, or AWS `rate(N minutes|hours|days)`.
public enum Schedule: Sendable, Equatable, CustomStringConvertible {
  case cron(CronExpression)
  case aws(AWSCronExpression)
  /// Every `seconds`, at multiples of it since 1970-01-01T00:00:00Z (so `rate(1 hours)` fires on
  /// the hour, whatever the time zone).
  case rate(seconds: Int, text: String)

  public init(parsing text: String) throws(CronExpression.ParseError) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if trimmed.hasPrefix("cron(") {
      self = .aws(try AWSCronExpression(parsing: trimmed))
    } else if trimmed.hasPrefix("rate(") {
      guard trimmed.hasSuffix(")") else {
        throw CronExpression.ParseError("'\(trimmed)' is missing its closing ')'.")
      }
      let parts = trimmed.dropFirst(5).dropLast().split(separator: " ")
      guard parts.count == 2, let value = Int(parts[0]), value > 0 else {
        throw CronExpression.ParseError(
          "'\(trimmed)' is not a rate; expected rate(N minutes), rate(N hours) or rate(N days).")
      }
      let unit: Int
      switch parts[1] {
      // Test-only: seconds let end-to-end tests run a daemon through several fires quickly.
      // AWS has no such unit, and nothing but SIXTY_TEST_SECOND_RATES=1 enables it.
      case "second" where value == 1 && Schedule.secondRatesEnabled,
        "seconds" where value > 1 && Schedule.secondRatesEnabled:
        unit = 1
      case "minute" where value == 1, "minutes" where value > 1: unit = 60
      case "hour" where value == 1, "hours" where value > 1: unit = 3600
      case "day" where value == 1, "days" where value > 1: unit = 86400
      default:
        throw CronExpression.ParseError(
          "'\(trimmed)': the unit must be minute/hour/day for 1 and minutes/hours/days above 1, as AWS writes it."
        )
      }
      self = .rate(seconds: value * unit, text: trimmed)
    } else {
      self = .cron(try CronExpression(parsing: trimmed))
    }
  }

  static var secondRatesEnabled: Bool {
    ProcessInfo.processInfo.environment["SIXTY_TEST_SECOND_RATES"] == "1"
  }

  public var description: String {
    switch self {
    case .cron(let e): e.description
    case .aws(let e): e.description
    case .rate(_, let text): text
    }
  }

  var hours: Set<Int>? {
    switch self {
    case .cron(let e): e.hours
    case .aws(let e): e.hours
    case .rate: nil
    }
  }

  func matches(_ t: LocalMinute) -> Bool {
    switch self {
    case .cron(let e):
      e.matches(minute: t.minute, hour: t.hour, day: t.day, month: t.month, weekday: t.weekday)
    case .aws(let e): e.matches(t)
    case .rate: false
    }
  }
}

/// Finds fire times of a cron expression in an IANA time zone by walking real instants minute by
/// minute, so DST is handled by construction: a local time skipped by a DST gap never occurs, and
/// in a repeated hour only the first occurrence fires.
public struct CronSchedule: Sendable {
  public let schedule: Schedule
  public let timeZone: TimeZone

  public init(_ expression: CronExpression, timeZone: TimeZone) {
    self.schedule = .cron(expression)
    self.timeZone = timeZone
  }

  public init(_ schedule: Schedule, timeZone: TimeZone) {
    self.schedule = schedule
    self.timeZone = timeZone
  }

  /// Wall times are computed as "UTC" dates shifted by the zone's offset, read with this calendar.
  static let wallCalendar: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar
  }()

  /// The local wall time at `instant`, as a date whose UTC reading is that wall time.
  func wall(_ instant: Date) -> Date {
    instant.addingTimeInterval(Double(timeZone.secondsFromGMT(for: instant)))
  }

  static func local(wall: Date) -> LocalMinute {
    let calendar = wallCalendar
    let c = calendar.dateComponents([.minute, .hour, .day, .month, .year, .weekday], from: wall)
    let days = calendar.range(of: .day, in: .month, for: wall)?.count ?? 31
    return LocalMinute(
      minute: c.minute!, hour: c.hour!, day: c.day!, month: c.month!, year: c.year!, weekday: c.weekday! - 1,
      daysInMonth: days)
  }

  /// Whether the schedule fires at the instant `minute` (a whole minute).
  ///
  /// Daylight saving, the documented way: a local minute that happens twice (clocks going back)
  /// fires only at its first occurrence; local minutes that never happen (clocks going forward)
  /// fire once, at the first minute after the jump.
  func fires(at minute: Date) -> Bool {
    if case .rate(let seconds, _) = schedule {
      return Int(minute.timeIntervalSince1970) % seconds == 0
    }
    let offset = timeZone.secondsFromGMT(for: minute)
    let wall = minute.addingTimeInterval(Double(offset))
    // The second occurrence of a repeated local minute: the same wall time `shift` seconds ago.
    let shift = timeZone.secondsFromGMT(for: minute.addingTimeInterval(-3 * 3600)) - offset
    if shift > 0 {
      let earlier = minute.addingTimeInterval(-Double(shift))
      if self.wall(earlier) == wall { return false }
    }
    if schedule.matches(Self.local(wall: wall)) { return true }
    // The first minute after a jump forward: the skipped local minutes that match fire here, once.
    let previousOffset = timeZone.secondsFromGMT(for: minute.addingTimeInterval(-60))
    if offset > previousOffset {
      var skipped = minute.addingTimeInterval(Double(previousOffset))
      while skipped < wall {
        if schedule.matches(Self.local(wall: skipped)) { return true }
        skipped = skipped.addingTimeInterval(60)
      }
    }
    return false
  }

  static func floorMinute(_ date: Date) -> Date {
    Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60)
  }

  /// The latest fire time at or before `date`, looking back at most `limit` seconds.
  public func previous(atOrBefore date: Date, limit: TimeInterval) -> Date? {
    if case .rate(let seconds, _) = schedule {
      let fire = Date(timeIntervalSince1970: Double(Int(date.timeIntervalSince1970) / seconds * seconds))
      return date.timeIntervalSince(fire) <= limit ? fire : nil
    }
    var minute = Self.floorMinute(date)
    let stop = date.addingTimeInterval(-limit)
    while minute >= stop {
      if fires(at: minute) { return minute }
      minute = minute.addingTimeInterval(-60)
    }
    return nil
  }

  /// The first fire time strictly after `date`, looking ahead at most `limit` seconds.
  public func next(after date: Date, limit: TimeInterval = 366 * 86400) -> Date? {
    if case .rate(let seconds, _) = schedule {
      let fire = Date(
        timeIntervalSince1970: Double((Int(date.timeIntervalSince1970) / seconds + 1) * seconds))
      return fire.timeIntervalSince(date) <= limit ? fire : nil
    }
    var minute = Self.floorMinute(date).addingTimeInterval(60)
    let stop = date.addingTimeInterval(limit)
    while minute <= stop {
      if fires(at: minute) { return minute }
      // Skip the rest of an hour the expression never fires in.
      let c = Self.wallCalendar.dateComponents([.minute, .hour], from: wall(minute))
      if let hours = schedule.hours, !hours.contains(c.hour!) {
        minute = minute.addingTimeInterval(Double(60 - c.minute!) * 60)
      } else {
        minute = minute.addingTimeInterval(60)
      }
    }
    return nil
  }
}
