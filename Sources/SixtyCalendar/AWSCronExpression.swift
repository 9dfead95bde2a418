import Foundation

/// The local time of one minute, as schedules see it.
public struct LocalMinute: Sendable, Equatable {
  public var minute: Int
  public var hour: Int
  public var day: Int
  public var month: Int
  public var year: Int
  /// 0 = Sunday … 6 = Saturday.
  public var weekday: Int
  public var daysInMonth: Int
}

/// An AWS-style `cron(Minutes Hours Day-of-month Month Day-of-week Year)` expression, as
/// EventBridge and the AWS Scheduler write them: `?` in one of the two day fields, `L` (last day
/// of the month, or `5L` the last Thursday), `W` (`15W` the weekday nearest the 15th, `LW` the
/// last weekday), `#` (`2#1` the first Monday), day-of-week 1-7 with 1 = Sunday, and a year field.
public struct AWSCronExpression: Sendable, Equatable, CustomStringConvertible {
  enum DayRule: Sendable, Equatable {
    case any
    case days(Set<Int>)
    case last
    case lastWeekday
    case nearestWeekday(Int)
    case weekdays(Set<Int>)  // 0-6
    case lastOfWeekday(Int)  // 0-6
    case nth(weekday: Int, n: Int)
  }

  public let minutes: Set<Int>
  public let hours: Set<Int>
  let dayOfMonth: DayRule
  public let months: Set<Int>
  let dayOfWeek: DayRule
  public let years: Set<Int>
  public let description: String

  public init(parsing text: String) throws(CronExpression.ParseError) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard trimmed.hasPrefix("cron("), trimmed.hasSuffix(")") else {
      throw CronExpression.ParseError(
        "'\(trimmed)' is not an AWS cron expression; expected cron(min hour dom month dow year).")
    }
    let inner = trimmed.dropFirst(5).dropLast()
    let fields = inner.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    guard fields.count == 6 else {
      throw CronExpression.ParseError(
        "'\(trimmed)' has \(fields.count) fields; expected 6 (minutes hours day-of-month month day-of-week year)."
      )
    }
    minutes = try CronExpression.field(fields[0], "minute", 0...59, names: [])
    hours = try CronExpression.field(fields[1], "hour", 0...23, names: [])
    months = try CronExpression.field(
      fields[3], "month", 1...12, names: CronExpression.monthNames, nameBase: 1)
    years = try CronExpression.field(fields[5], "year", 1970...2199, names: [])
    let dom = fields[2]
    let dow = fields[4]
    guard (dom == "?") != (dow == "?") else {
      throw CronExpression.ParseError(
        "'\(trimmed)': exactly one of day-of-month and day-of-week must be '?' (AWS does not combine them).")
    }
    dayOfMonth = try AWSCronExpression.dayOfMonthRule(dom)
    dayOfWeek = try AWSCronExpression.dayOfWeekRule(dow)
    description = trimmed
  }

  static func dayOfMonthRule(_ text: String) throws(CronExpression.ParseError) -> DayRule {
    switch text {
    case "?", "*": return .any
    case "L": return .last
    case "LW": return .lastWeekday
    default:
      if text.hasSuffix("W") {
        guard let day = Int(text.dropLast()), (1...31).contains(day) else {
          throw CronExpression.ParseError(
            "'\(text)' is not a valid nearest-weekday day-of-month; expected 1W to 31W.")
        }
        return .nearestWeekday(day)
      }
      return .days(try CronExpression.field(text, "day-of-month", 1...31, names: []))
    }
  }

  static func dayOfWeekRule(_ text: String) throws(CronExpression.ParseError) -> DayRule {
    func weekday(_ part: Substring) throws(CronExpression.ParseError) -> Int {
      if let value = Int(part), (1...7).contains(value) { return value - 1 }
      if let index = CronExpression.dayNames.firstIndex(of: part.lowercased()) { return index }
      throw CronExpression.ParseError(
        "'\(part)' is not a valid day-of-week; expected 1-7 (1 = Sunday) or SUN-SAT.")
    }
    switch text {
    case "?", "*": return .any
    default:
      if let hash = text.firstIndex(of: "#") {
        let day = try weekday(text[..<hash])
        guard let n = Int(text[text.index(after: hash)...]), (1...5).contains(n) else {
          throw CronExpression.ParseError("'\(text)': the number after '#' must be 1 to 5.")
        }
        return .nth(weekday: day, n: n)
      }
      if text.hasSuffix("L") {
        return .lastOfWeekday(try weekday(text.dropLast()))
      }
      // 1-7 with 1 = Sunday: shift to 0-6.
      let values = try CronExpression.field(
        text, "day-of-week", 1...7, names: CronExpression.dayNames, nameBase: 1)
      return .weekdays(Set(values.map { $0 - 1 }))
    }
  }

  /// Whether the rule picks `t`'s day.
  static func dayMatches(_ rule: DayRule, _ t: LocalMinute) -> Bool {
    switch rule {
    case .any: return true
    case .days(let days): return days.contains(t.day)
    case .last: return t.day == t.daysInMonth
    case .lastWeekday:
      // The last Monday-Friday of the month.
      let lastWeekday = (t.weekday + (t.daysInMonth - t.day)) % 7
      let back = lastWeekday == 6 ? 1 : lastWeekday == 0 ? 2 : 0
      return t.day == t.daysInMonth - back
    case .nearestWeekday(let target):
      let day = min(target, t.daysInMonth)
      let weekdayOfTarget = ((t.weekday + (day - t.day)) % 7 + 7) % 7
      var chosen = day
      // Saturday: Friday, or Monday the 3rd. Sunday: Monday, or Friday at the month's end.
      if weekdayOfTarget == 6 { chosen = day == 1 ? 3 : day - 1 }
      if weekdayOfTarget == 0 { chosen = day == t.daysInMonth ? day - 2 : day + 1 }
      return t.day == chosen
    case .weekdays(let days): return days.contains(t.weekday)
    case .lastOfWeekday(let weekday): return t.weekday == weekday && t.day + 7 > t.daysInMonth
    case .nth(let weekday, let n): return t.weekday == weekday && (t.day - 1) / 7 + 1 == n
    }
  }

  public func matches(_ t: LocalMinute) -> Bool {
    minutes.contains(t.minute) && hours.contains(t.hour) && months.contains(t.month) && years.contains(t.year)
      && AWSCronExpression.dayMatches(dayOfMonth, t) && AWSCronExpression.dayMatches(dayOfWeek, t)
  }
}
