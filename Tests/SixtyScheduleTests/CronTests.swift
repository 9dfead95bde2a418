import Foundation
import SixtyCore
import SixtyPolicy
import Testing

@testable import SixtySchedule

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
    // 02:30 in Berlin does not exist on 2027-03-28 (clocks jump 02:00 -> 03:00): no fire that day.
    #expect(
      try next("30 2 * * *", after: "2027-03-27T12:00:00Z", zone: "Europe/Berlin", count: 2) == [
        "2027-03-29T00:30:00Z", "2027-03-30T00:30:00Z",
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
