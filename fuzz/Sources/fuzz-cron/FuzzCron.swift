import Foundation
import FuzzDriver
import SixtyCalendar

/// libFuzzer target: arbitrary text as a schedule (5-field cron, macros, AWS cron(), rate()),
/// and, when it parses, its next fire times in a DST zone.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCron(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  guard let schedule = try? Schedule(parsing: text) else { return 0 }
  let calendar = CronSchedule(schedule, timeZone: TimeZone(identifier: "Europe/Berlin")!)
  var at = Date(timeIntervalSince1970: 1_805_000_000)  // near a DST change
  for _ in 0..<3 {
    guard let next = calendar.next(after: at, limit: 40 * 86400) else { break }
    precondition(next > at, "next(after:) went backwards for '\(text)'")
    at = next
  }
  return 0
}

@_cdecl("fuzz_cron_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
  runLibFuzzer(argc, argv) { data, size in data.map { fuzzCron($0, size) } ?? 0 }
}
