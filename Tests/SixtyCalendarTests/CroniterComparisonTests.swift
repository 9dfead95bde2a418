import Foundation
import Testing

@testable import SixtyCalendar

/// Fire times compared with an independent reference: `croniter` (PyPI) for the cron matching,
/// Python's zoneinfo for the instants (see Reference/cron_reference.py), on generated
/// expressions around daylight-saving transitions in three time zones.
@Suite struct CroniterComparisonTests {
  /// A small deterministic generator (SplitMix64), so a failure names a reproducible case.
  struct Generator {
    var state: UInt64
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
      range.lowerBound + Int(next() % UInt64(range.count))
    }
    mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }
  }

  /// One field: `*`, a value, a list, a range, a stepped range or `*/step`, with names sometimes.
  static func field(
    _ g: inout Generator, _ range: ClosedRange<Int>, names: [String] = [], nameBase: Int = 0, bias: [Int] = []
  )
    -> String
  {
    func value() -> String {
      let v = !bias.isEmpty && g.chance(60) ? bias[g.int(0...(bias.count - 1))] : g.int(range)
      if !names.isEmpty && g.chance(30) && v - nameBase >= 0 && v - nameBase < names.count {
        return names[v - nameBase]
      }
      return String(v)
    }
    switch g.int(0...9) {
    case 0, 1: return "*"
    case 2, 3: return value()
    case 4, 5:
      return (0..<g.int(2...4)).map { _ in value() }.joined(separator: ",")
    // croniter reads a one-value range like 13-13 as '*' (Vixie reads it as 13): ranges here
    // always span two values or more, and a hand-written case covers the one-value kind.
    case 6:
      let a = g.int(range.lowerBound...(range.upperBound - 1))
      let b = g.int((a + 1)...range.upperBound)
      return "\(a)-\(b)"
    case 7:
      let a = g.int(range.lowerBound...(range.lowerBound + (range.upperBound - range.lowerBound) / 2))
      let b = g.int((a + 1)...range.upperBound)
      return "\(a)-\(b)/\(g.int(2...5))"
    case 8: return "*/\(g.int(2...(max(2, range.count / 3))))"
    default:
      let a = g.int(range)
      return "\(a),\(g.int(range.lowerBound...(range.upperBound - 1)))-\(range.upperBound)"
    }
  }

  static func expression(_ g: inout Generator) -> String {
    if g.chance(4) {
      return ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@midnight"][g.int(0...5)]
    }
    let minute = field(&g, 0...59, bias: [0, 15, 30, 45, 59])
    // Hours around the usual transition times (01:00-03:00 local) are chosen most often.
    let hour = field(&g, 0...23, bias: [1, 2, 3, 0])
    var dom = g.chance(65) ? "*" : field(&g, 1...31, bias: [1, 15, 28, 31])
    let month =
      g.chance(70)
      ? "*" : field(&g, 1...12, names: CronExpression.monthNames, nameBase: 1, bias: [3, 10, 11, 4])
    var dow = g.chance(60) ? "*" : field(&g, 0...7, names: CronExpression.dayNames, bias: [0, 7, 6])
    // Vixie cron treats a day field starting with '*' (as in */2) as unrestricted; croniter treats
    // only a bare '*' so. Keep stepped stars out of the day fields here (hand-written cases cover them).
    if dom.hasPrefix("*/") { dom = "*" }
    if dow.hasPrefix("*/") { dow = "*" }
    return "\(minute) \(hour) \(dom) \(month) \(dow)"
  }

  /// Daylight-saving transitions (UTC) in three zones, both directions, both hemispheres.
  static let transitions: [(zone: String, at: String)] = [
    ("Europe/Berlin", "2027-03-28T01:00:00Z"), ("Europe/Berlin", "2026-10-25T01:00:00Z"),
    ("America/New_York", "2027-03-14T07:00:00Z"), ("America/New_York", "2026-11-01T06:00:00Z"),
    ("Australia/Sydney", "2026-10-04T16:00:00Z"), ("Australia/Sydney", "2027-04-03T16:00:00Z"),
  ]

  struct Case: Codable {
    var expr: String
    var tz: String
    var start: String
    var count: Int
  }

  static func ours(_ c: Case) throws -> [String] {
    let schedule = CronSchedule(try CronExpression(parsing: c.expr), timeZone: TimeZone(identifier: c.tz)!)
    let formatter = ISO8601DateFormatter()
    var at = formatter.date(from: c.start)!
    var out: [String] = []
    while out.count < c.count, let fire = schedule.next(after: at, limit: 400 * 86400) {
      out.append(formatter.string(from: fire))
      at = fire
    }
    return out
  }

  @Test func generatedExpressionsMatchCroniterAcrossDaylightSaving() throws {
    var g = Generator(state: 20_261_125)
    var cases: [Case] = []
    let formatter = ISO8601DateFormatter()
    for index in 0..<360 {
      let transition = Self.transitions[index % Self.transitions.count]
      // Start between two days and one hour before the transition.
      let offset = Double(g.int(1...48)) * 3600
      let start = formatter.date(from: transition.at)!.addingTimeInterval(-offset)
      cases.append(
        Case(expr: Self.expression(&g), tz: transition.zone, start: formatter.string(from: start), count: 6))
    }
    // Every hour and minute of the transition nights, in each zone.
    for transition in Self.transitions {
      let start = formatter.string(from: formatter.date(from: transition.at)!.addingTimeInterval(-4 * 3600))
      for expr in [
        "* * * * *", "*/7 * * * *", "30 * * * *", "0 2 * * *", "30 2 * * *", "59 1 * * *", "0 3 * * *",
        "15 0-4 * * *",
      ] {
        cases.append(
          Case(expr: expr, tz: transition.zone, start: start, count: expr.hasPrefix("* ") ? 400 : 8))
      }
    }
    let reference = try Self.reference(cases)
    try #require(reference.count == cases.count)
    var mismatches: [String] = []
    for (index, c) in cases.enumerated() {
      let mine = try Self.ours(c)
      if mine != reference[index] {
        let firstDifference = zip(mine, reference[index]).first { $0 != $1 }
        mismatches.append(
          "'\(c.expr)' in \(c.tz) after \(c.start): sixty \(firstDifference?.0 ?? mine.last ?? "-"), croniter \(firstDifference?.1 ?? reference[index].last ?? "-")"
        )
      }
    }
    #expect(
      mismatches.isEmpty,
      "\(mismatches.count) of \(cases.count) differ:\n\(mismatches.prefix(20).joined(separator: "\n"))")
  }

  @Test func oneValueRangesAreThatValue() throws {
    let schedule = CronSchedule(
      try CronExpression(parsing: "13-13 7-7 * * *"), timeZone: TimeZone(identifier: "UTC")!)
    let formatter = ISO8601DateFormatter()
    let first = try #require(schedule.next(after: formatter.date(from: "2026-11-25T00:00:00Z")!))
    let second = try #require(schedule.next(after: first))
    #expect(formatter.string(from: first) == "2026-11-25T07:13:00Z")
    #expect(formatter.string(from: second) == "2026-11-26T07:13:00Z")
  }

  @Test func steppedStarsInDayFieldsFollowVixie() throws {
    // Vixie: '*/2' in day-of-month counts as '*', so the day fields are ANDed: odd days that are Mondays.
    let schedule = CronSchedule(
      try CronExpression(parsing: "0 0 */2 * mon"), timeZone: TimeZone(identifier: "UTC")!)
    let formatter = ISO8601DateFormatter()
    var at = formatter.date(from: "2026-11-25T00:00:00Z")!
    var fires: [String] = []
    for _ in 0..<3 {
      let next = try #require(schedule.next(after: at))
      fires.append(formatter.string(from: next))
      at = next
    }
    #expect(fires == ["2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z", "2027-01-11T00:00:00Z"])
  }

  /// Runs the Python reference (croniter must be installed: `make test` installs it).
  static func reference(_ cases: [Case]) throws -> [[String]] {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sixty-cron-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let input = directory.appendingPathComponent("in.json")
    let output = directory.appendingPathComponent("out.json")
    let errors = directory.appendingPathComponent("err.txt")
    try JSONEncoder().encode(cases).write(to: input)
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
      "Reference/cron_reference.py"
    ).path
    let status = try runShell("python3 '\(script)' < '\(input.path)' > '\(output.path)' 2> '\(errors.path)'")
    let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
    try #require(status == 0, "the croniter reference failed (exit \(status)): \(stderr)")
    return try JSONDecoder().decode([[String]].self, from: Data(contentsOf: output))
  }

  static func runShell(_ command: String) throws -> Int32 {
    var pid: pid_t = 0
    let words: [String] = ["/bin/sh", "-c", command]
    let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let result = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
    guard result == 0 else { throw POSIXError(.init(rawValue: result) ?? .EIO) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status >> 8) & 0xff
  }
}
