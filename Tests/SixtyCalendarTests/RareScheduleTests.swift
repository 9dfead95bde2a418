import Foundation
import SixtyCore
import Testing

@testable import SixtyCalendar

/// Schedules that fire rarely still fire (found as far ahead as needed, like Vixie cron and
/// croniter), and schedules that never can are refused when the jobs file is read. Every start
/// time is given: nothing reads the wall clock.
@Suite struct RareScheduleTests {
  func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

  func next(_ text: String, after: String, zone: String = "UTC", count: Int = 2) throws -> [String] {
    let schedule = CronSchedule(try Schedule(parsing: text), timeZone: TimeZone(identifier: zone)!)
    let formatter = ISO8601DateFormatter()
    var at = date(after)
    var out: [String] = []
    for _ in 0..<count {
      guard let fire = schedule.next(after: at) else { break }
      out.append(formatter.string(from: fire))
      at = fire
    }
    return out
  }

  @Test func theTwentyNinthOfFebruaryIsFoundYearsAhead() throws {
    #expect(
      try next("0 0 29 2 *", after: "2026-12-01T00:00:00Z") == [
        "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z",
      ])
    // 2100 is not a leap year: from 2096 the next one is 2104.
    #expect(
      try next("0 0 29 2 *", after: "2096-03-01T00:00:00Z") == [
        "2104-02-29T00:00:00Z", "2108-02-29T00:00:00Z",
      ])
    // In a zone: 09:00 in New York is 14:00Z.
    #expect(
      try next("0 9 29 2 *", after: "2026-12-01T00:00:00Z", zone: "America/New_York") == [
        "2028-02-29T14:00:00Z", "2032-02-29T14:00:00Z",
      ])
    // AWS style, with and without a year field.
    #expect(
      try next("cron(0 0 29 2 ? *)", after: "2026-12-01T00:00:00Z", count: 1) == ["2028-02-29T00:00:00Z"])
    #expect(
      try next("cron(0 0 29 2 ? 2097-2199)", after: "2026-12-01T00:00:00Z", count: 1) == [
        "2104-02-29T00:00:00Z"
      ])
  }

  /// The local date can be a day off UTC's either way (UTC+14, UTC-12, a 45-minute zone with
  /// daylight saving in February): the search still finds the local date's fire.
  @Test func zonesFarFromUTC() throws {
    #expect(
      try next("0 0 31 12 *", after: "2026-12-01T00:00:00Z", zone: "Pacific/Kiritimati") == [
        "2026-12-30T10:00:00Z", "2027-12-30T10:00:00Z",
      ])
    #expect(
      try next("0 23 31 12 *", after: "2026-12-01T00:00:00Z", zone: "Etc/GMT+12") == [
        "2027-01-01T11:00:00Z", "2028-01-01T11:00:00Z",
      ])
    #expect(
      try next("0 12 29 2 *", after: "2026-12-01T00:00:00Z", zone: "Pacific/Chatham") == [
        "2028-02-28T22:15:00Z", "2032-02-28T22:15:00Z",
      ])
  }

  @Test func theThirtyFirstSkipsShortMonths() throws {
    #expect(
      try next("0 0 31 * *", after: "2027-01-31T01:00:00Z") == [
        "2027-03-31T00:00:00Z", "2027-05-31T00:00:00Z",
      ])
  }

  @Test func bothDayFieldsRestrictedAreOred() throws {
    // February, and the 29th or a Monday: the Mondays of February 2027 come first.
    #expect(
      try next("0 0 29 2 1", after: "2026-12-01T00:00:00Z", count: 3) == [
        "2027-02-01T00:00:00Z", "2027-02-08T00:00:00Z", "2027-02-15T00:00:00Z",
      ])
  }

  @Test func aYearlyFireInADaylightSavingGapRunsAfterTheJump() throws {
    // 02:30 on 2027-03-28 does not exist in Berlin: it runs at 03:00 (01:00Z); 2028-03-28 is an
    // ordinary day (00:30Z).
    #expect(
      try next("30 2 28 3 *", after: "2026-04-01T00:00:00Z", zone: "Europe/Berlin") == [
        "2027-03-28T01:00:00Z", "2028-03-28T00:30:00Z",
      ])
  }

  @Test(arguments: [
    ("0 0 30 2 *", true), ("0 0 31 4 *", true), ("0 0 31 4,6,9,11 *", true), ("0 0 30,31 2 *", true),
    ("0 0 29 2 *", false), ("0 0 31 * *", false), ("0 0 30 2 mon", false), ("0 0 31 2,3 *", false),
    ("cron(0 0 30 2 ? *)", true), ("cron(0 0 L 2 ? *)", false), ("rate(5 minutes)", false),
  ])
  func schedulesThatCanNeverFire(text: String, never: Bool) throws {
    let schedule = try Schedule(parsing: text)
    #expect((schedule.neverFires(after: date("2026-12-01T00:00:00Z")) != nil) == never)
    // And the search ends, without a fire, for those.
    let fire = CronSchedule(schedule, timeZone: TimeZone(identifier: "UTC")!).next(
      after: date("2026-12-01T00:00:00Z"))
    #expect((fire == nil) == never)
  }

  @Test func anAWSScheduleWhoseYearsAreOverNeverFires() throws {
    let schedule = try Schedule(parsing: "cron(0 0 1 1 ? 2020-2025)")
    #expect(schedule.neverFires(after: date("2026-12-01T00:00:00Z")) == "its last year, 2025, is over")
    #expect(schedule.neverFires(after: date("2024-12-01T00:00:00Z")) == nil)
  }

  @Test func civilDatesRoundTrip() {
    for day in stride(from: -800_000, through: 800_000, by: 997) {
      let (y, m, d) = CivilDate.date(ofDay: day)
      #expect(CivilDate.day(year: y, month: m, day: d) == day)
    }
    #expect(CivilDate.day(year: 1970, month: 1, day: 1) == 0)
    #expect(CivilDate.weekday(ofDay: 0) == 4)  // a Thursday
    #expect(CivilDate.weekday(ofDay: CivilDate.day(year: 2028, month: 2, day: 29)) == 2)  // a Tuesday
    #expect(!CivilDate.isLeap(2100) && CivilDate.isLeap(2000) && CivilDate.isLeap(2028))
  }

  @Test func aJobsFileWithAScheduleThatCanNeverFireIsAnError() throws {
    let directory = NSTemporaryDirectory() + "sixty-rare-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/jobs.yml"
    try """
    jobs:
      leap:
        playbook: p.yml
        inventory: i.yml
        schedule: "0 0 29 2 *"
      never:
        playbook: p.yml
        inventory: i.yml
        schedule: "0 0 31 4 *"
      over:
        playbook: p.yml
        inventory: i.yml
        schedule: cron(0 0 1 1 ? 2020)

    """.write(toFile: path, atomically: true, encoding: .utf8)
    let (jobs, diagnostics) = JobsFile.load(path: path, now: date("2026-12-01T00:00:00Z"))
    #expect(jobs == nil)
    #expect(
      diagnostics.map { $0.description.replacingOccurrences(of: directory + "/", with: "") } == [
        "jobs.yml:9:15: error: the schedule of job 'never' can never fire: no date matches the day and month fields of '0 0 31 4 *'; expected a day that exists in one of its months (30 and 31 February, and 31 April, June, September and November never do).",
        "jobs.yml:13:15: error: the schedule of job 'over' can never fire: its last year, 2020, is over.",
      ])
  }
}
