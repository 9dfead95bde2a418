import Foundation
import SixtyCore
import SixtyPolicy
import Testing

@testable import SixtyCalendar

@Suite struct CronTests {
  func date(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    return formatter.date(from: text)!
  }

  func next(_ expression: String, after: String, zone: String = "UTC", count: Int = 1) throws -> [String] {
    let schedule = CronSchedule(
      try CronExpression(parsing: expression), timeZone: TimeZone(identifier: zone)!)
    let formatter = ISO8601DateFormatter()
    formatter.timeZone = TimeZone(identifier: "UTC")
    var at = date(after)
    var out: [String] = []
    for _ in 0..<count {
      guard let fire = schedule.next(after: at) else { break }
      out.append(formatter.string(from: fire))
      at = fire
    }
    return out
  }

  @Test func fieldsListsRangesStepsAndNames() throws {
    #expect(
      try next("*/15 9-10 * * *", after: "2026-11-25T08:00:00Z", count: 3) == [
        "2026-11-25T09:00:00Z", "2026-11-25T09:15:00Z", "2026-11-25T09:30:00Z",
      ])
    #expect(try next("0 2 * jan,feb mon-fri", after: "2026-11-25T08:00:00Z") == ["2027-01-01T02:00:00Z"])
    #expect(
      try next("30 4 1,15 * *", after: "2026-11-25T08:00:00Z", count: 2) == [
        "2026-12-01T04:30:00Z", "2026-12-15T04:30:00Z",
      ])
    #expect(try next("@daily", after: "2026-11-25T08:00:00Z") == ["2026-11-26T00:00:00Z"])
    #expect(try next("@hourly", after: "2026-11-25T08:00:00Z") == ["2026-11-25T09:00:00Z"])
  }

  @Test func sundayIsZeroOrSevenAndDayFieldsAreOred() throws {
    // 2026-11-29 is a Sunday.
    #expect(try next("0 0 * * 7", after: "2026-11-25T08:00:00Z") == ["2026-11-29T00:00:00Z"])
    #expect(try next("0 0 * * 0", after: "2026-11-25T08:00:00Z") == ["2026-11-29T00:00:00Z"])
    // Both restricted: the 1st of the month OR any Sunday.
    #expect(
      try next("0 0 1 * sun", after: "2026-11-25T08:00:00Z", count: 2) == [
        "2026-11-29T00:00:00Z", "2026-12-01T00:00:00Z",
      ])
  }

  @Test func timeZonesAndDaylightSaving() throws {
    // 02:30 in Berlin does not exist on 2027-03-28 (clocks jump 02:00 -> 03:00): it runs once at
    // the next valid minute, 03:00 (01:00Z).
    #expect(
      try next("30 2 * * *", after: "2027-03-27T12:00:00Z", zone: "Europe/Berlin", count: 2) == [
        "2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z",
      ])
    // Every skipped minute that matches still makes one run only.
    #expect(
      try next("*/10 2 * * *", after: "2027-03-28T00:55:00Z", zone: "Europe/Berlin", count: 2) == [
        "2027-03-28T01:00:00Z", "2027-03-29T00:00:00Z",
      ])
    // A schedule that matches 03:00 itself as well runs once then.
    #expect(
      try next("0,30 2,3 * * *", after: "2027-03-28T00:55:00Z", zone: "Europe/Berlin", count: 2) == [
        "2027-03-28T01:00:00Z", "2027-03-28T01:30:00Z",
      ])
    // 02:30 happens twice on 2026-10-25 (03:00 -> 02:00): it fires once, at the first.
    #expect(
      try next("30 2 * * *", after: "2026-10-24T12:00:00Z", zone: "Europe/Berlin", count: 2) == [
        "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z",
      ])
  }

  @Test(arguments: [
    ("* * * *", "has 4 fields; expected 5"),
    ("60 * * * *", "'60' is not a valid minute"),
    ("* * * foo *", "'foo' is not a valid month"),
    ("5-1 * * * *", "runs backwards"),
    ("*/0 * * * *", "must be a positive number"),
    ("@sometimes", "is not a cron macro"),
    ("1,,2 * * * *", "empty list item"),
  ])
  func badExpressions(text: String, fragment: String) {
    #expect {
      try CronExpression(parsing: text)
    } throws: { error in
      "\(error)".contains(fragment)
    }
  }

  @Test func windowsOpenCloseAndCutOff() throws {
    let window = MaintenanceWindow(
      name: "nightly", schedule: "0 2 * * *", duration: .hours(2), cutoff: .minutes(30), timeZone: "UTC")
    let inside = try WindowEvaluator.state(of: window, at: date("2026-11-25T02:45:00Z"))
    #expect(inside.isOpen)
    #expect(inside.opened == date("2026-11-25T02:00:00Z"))
    #expect(inside.closes == date("2026-11-25T04:00:00Z"))
    #expect(inside.startCutoff == date("2026-11-25T03:30:00Z"))
    let outside = try WindowEvaluator.state(of: window, at: date("2026-11-25T05:00:00Z"))
    #expect(!outside.isOpen)
    #expect(outside.nextOpening == date("2026-11-26T02:00:00Z"))
    #expect(throws: WindowEvaluator.Failure.self) {
      try WindowEvaluator.state(
        of: MaintenanceWindow(name: "x", schedule: "0 2 * * *", duration: .hours(1), timeZone: "Mars/Base"),
        at: Date())
    }
  }
}

@Suite struct AWSScheduleTests {
  func next(_ text: String, after: String, zone: String = "UTC", count: Int = 1) throws -> [String] {
    let schedule = CronSchedule(try Schedule(parsing: text), timeZone: TimeZone(identifier: zone)!)
    let formatter = ISO8601DateFormatter()
    var at = formatter.date(from: after)!
    var out: [String] = []
    for _ in 0..<count {
      guard let fire = schedule.next(after: at) else { break }
      out.append(formatter.string(from: fire))
      at = fire
    }
    return out
  }

  @Test func specialCharacters() throws {
    // L: the last day of the month.
    #expect(
      try next("cron(0 10 L * ? *)", after: "2027-02-01T00:00:00Z", count: 2) == [
        "2027-02-28T10:00:00Z", "2027-03-31T10:00:00Z",
      ])
    // W: the weekday nearest the 15th (2027-05-15 is a Saturday -> Friday the 14th).
    #expect(try next("cron(0 9 15W * ? *)", after: "2027-05-01T00:00:00Z") == ["2027-05-14T09:00:00Z"])
    // 1W on a Saturday the 1st moves forward to Monday the 3rd (2027-05-01 is a Saturday).
    #expect(try next("cron(0 9 1W * ? *)", after: "2027-04-30T00:00:00Z") == ["2027-05-03T09:00:00Z"])
    // LW: the last weekday (2027-07-31 is a Saturday -> Friday the 30th).
    #expect(try next("cron(0 9 LW * ? *)", after: "2027-07-01T00:00:00Z") == ["2027-07-30T09:00:00Z"])
    // #: the first Monday (2 = Monday).
    #expect(try next("cron(0 8 ? * 2#1 *)", after: "2026-11-25T00:00:00Z") == ["2026-12-07T08:00:00Z"])
    // 6L: the last Friday of the month.
    #expect(try next("cron(0 8 ? * 6L *)", after: "2026-11-25T00:00:00Z") == ["2026-11-27T08:00:00Z"])
    // Day names, ranges and the year field.
    #expect(
      try next("cron(30 2 ? * MON-FRI 2027)", after: "2026-11-25T00:00:00Z") == ["2027-01-01T02:30:00Z"])
    #expect(
      try next("cron(0/20 * * * ? *)", after: "2026-11-25T00:05:00Z", count: 3) == [
        "2026-11-25T00:20:00Z", "2026-11-25T00:40:00Z", "2026-11-25T01:00:00Z",
      ])
  }

  @Test func rates() throws {
    #expect(
      try next("rate(1 minute)", after: "2026-11-25T00:05:30Z", count: 2) == [
        "2026-11-25T00:06:00Z", "2026-11-25T00:07:00Z",
      ])
    #expect(try next("rate(6 hours)", after: "2026-11-25T07:00:00Z") == ["2026-11-25T12:00:00Z"])
    #expect(try next("rate(1 day)", after: "2026-11-25T07:00:00Z") == ["2026-11-26T00:00:00Z"])
  }

  @Test(arguments: [
    ("cron(0 10 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 10 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
    ("cron(0 10 L * ?)", "expected 6"),
    ("cron(0 10 ? * 8 *)", "not a valid day-of-week"),
    ("cron(0 10 ? * 2#6 *)", "must be 1 to 5"),
    ("rate(0 minutes)", "is not a rate"),
    ("rate(5 minute)", "minutes/hours/days above 1"),
    ("rate(5 weeks)", "minutes/hours/days above 1"),
  ])
  func badSchedules(text: String, fragment: String) {
    #expect {
      try Schedule(parsing: text)
    } throws: { error in
      "\(error)".contains(fragment)
    }
  }
}
