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

  /// The first fire time strictly after `date`, looking ahead at most `limit` seconds (nil: as
  /// far as needed).
  ///
  /// The search goes day by day over local dates, jumping over months (and AWS years) the
  /// schedule does not name, and walks minutes only around the days whose date fields match. The
  /// Gregorian calendar repeats every 400 years (146,097 days, a whole number of weeks), so a
  /// schedule with no matching date in 400 years from now has none ever: `0 0 29 2 *` finds the
  /// next 29 February however far it is, and a date that never exists ends the search.
  public func next(after date: Date, limit: TimeInterval? = nil) -> Date? {
    if case .rate(let seconds, _) = schedule {
      let fire = Date(
        timeIntervalSince1970: Double((Int(date.timeIntervalSince1970) / seconds + 1) * seconds))
      if let limit, fire.timeIntervalSince(date) > limit { return nil }
      return fire
    }
    let stop = limit.map { date.addingTimeInterval($0) }
    let first = Self.floorMinute(date).addingTimeInterval(60)
    // Minutes up to `scanned` have been looked at; windows of neighbouring days overlap.
    var scanned = first.addingTimeInterval(-60)
    // A day before the local date of `date`: a jump forward can carry that day's skipped
    // minutes past midnight.
    var day = CivilDate.day(ofWall: wall(date)) - 1
    let lastDay = day + CivilDate.daysIn400Years + 1
    while let candidate = schedule.nextMatchingDay(from: day, through: lastDay) {
      // The instants at which the day's minutes fire: UTC offsets run from -12 h to +14 h, and the
      // minutes a jump forward skips (at most a day of them) fire after the jump.
      let wallStart = Double(candidate) * 86400
      var minute = max(scanned.addingTimeInterval(60), Date(timeIntervalSince1970: wallStart - 15 * 3600))
      let end = Date(timeIntervalSince1970: wallStart + 86400 + 36 * 3600)
      if let stop, minute > stop { return nil }
      while minute <= end {
        if let stop, minute > stop { return nil }
        if fires(at: minute) { return minute }
        // Skip the rest of an hour the expression never fires in.
        let c = Self.wallCalendar.dateComponents([.minute, .hour], from: wall(minute))
        if let hours = schedule.hours, !hours.contains(c.hour!) {
          minute = minute.addingTimeInterval(Double(60 - c.minute!) * 60)
        } else {
          minute = minute.addingTimeInterval(60)
        }
      }
      scanned = max(scanned, end)
      day = candidate + 1
    }
    return nil
  }
}

/// Days since 1970-01-01 and back, in the proleptic Gregorian calendar, by arithmetic (Howard
/// Hinnant's `days_from_civil`): the day search touches hundreds of thousands of dates.
enum CivilDate {
  static let daysIn400Years = 146_097

  static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

  static func daysInMonth(_ month: Int, year: Int) -> Int {
    switch month {
    case 2: isLeap(year) ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
  }

  static func day(year: Int, month: Int, day: Int) -> Int {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * daysIn400Years + doe - 719_468
  }

  static func date(ofDay days: Int) -> (year: Int, month: Int, day: Int) {
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / daysIn400Years
    let doe = z - era * daysIn400Years
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
  }

  /// 0 = Sunday … 6 = Saturday; 1970-01-01 was a Thursday.
  static func weekday(ofDay days: Int) -> Int { ((days % 7) + 7 + 4) % 7 }

  /// The day of a wall time written as a UTC date (`CronSchedule.wall`).
  static func day(ofWall wall: Date) -> Int { Int((wall.timeIntervalSince1970 / 86400).rounded(.down)) }
}

extension Schedule {
  /// Whether the date fields (month, day of month, day of week, AWS year) pick this local date.
  func matchesDate(year: Int, month: Int, day: Int, weekday: Int) -> Bool {
    switch self {
    case .cron(let e):
      guard e.months.contains(month) else { return false }
      let dom = e.daysOfMonth.contains(day)
      let dow = e.daysOfWeek.contains(weekday)
      return e.domRestricted && e.dowRestricted ? dom || dow : dom && dow
    case .aws(let e):
      guard e.years.contains(year), e.months.contains(month) else { return false }
      let t = LocalMinute(
        minute: 0, hour: 0, day: day, month: month, year: year, weekday: weekday,
        daysInMonth: CivilDate.daysInMonth(month, year: year))
      return AWSCronExpression.dayMatches(e.dayOfMonth, t) && AWSCronExpression.dayMatches(e.dayOfWeek, t)
    case .rate: return true
    }
  }

  /// The first local date (days since 1970-01-01) from `start` through `end` whose date fields
  /// match; months and AWS years the schedule does not name are skipped whole.
  func nextMatchingDay(from start: Int, through end: Int) -> Int? {
    var current = start
    while current <= end {
      let (year, month, day) = CivilDate.date(ofDay: current)
      let months: Set<Int>
      switch self {
      case .cron(let e): months = e.months
      case .aws(let e):
        months = e.months
        guard e.years.contains(year) else {
          // The next year it names, if any.
          guard let nextYear = e.years.filter({ $0 > year }).min() else { return nil }
          current = CivilDate.day(year: nextYear, month: 1, day: 1)
          continue
        }
      case .rate: return current
      }
      guard months.contains(month) else {
        current =
          month == 12
          ? CivilDate.day(year: year + 1, month: 1, day: 1)
          : CivilDate.day(year: year, month: month + 1, day: 1)
        continue
      }
      if matchesDate(year: year, month: month, day: day, weekday: CivilDate.weekday(ofDay: current)) {
        return current
      }
      current += 1
    }
    return nil
  }

  /// Why the schedule can never fire on or after the local date of `date`, or nil when it can:
  /// a day that no month it names has (`0 0 30 2 *`, `0 0 31 4 *`), or AWS years that are over.
  public func neverFires(after date: Date) -> String? {
    if case .rate = self { return nil }
    let start = CivilDate.day(ofWall: date) - 1
    guard nextMatchingDay(from: start, through: start + CivilDate.daysIn400Years + 1) == nil else {
      return nil
    }
    if case .aws(let e) = self, let last = e.years.max(), last < CivilDate.date(ofDay: start + 1).year {
      return "its last year, \(last), is over"
    }
    return
      "no date matches the day and month fields of '\(self)'; expected a day that exists in one of its months (30 and 31 February, and 31 April, June, September and November never do)"
  }
}
