import Foundation
import SixtyCalendar

/// Fire times of jobs: `sixty jobs next`'s preview, and how times and zones are written.
public enum JobSchedules {
  /// The next fire times of one job.
  public struct Preview: Sendable {
    public var job: Job
    /// At most the count asked for; fewer when the schedule's AWS years run out.
    public var times: [Date]
  }

  /// The next `count` fire times of each job after `start`.
  public static func preview(_ jobs: [Job], count: Int, from start: Date) -> [Preview] {
    jobs.map { job in
      var times: [Date] = []
      var at = start
      while times.count < count, let next = job.calendar.next(after: at) {
        times.append(next)
        at = next
      }
      return Preview(job: job, times: times)
    }
  }

  /// A zone's IANA name; Foundation on Linux calls UTC "GMT".
  public static func zoneName(_ zone: TimeZone) -> String {
    zone.identifier == "GMT" ? "UTC" : zone.identifier
  }

  /// A time as the daemon logs and passes it: UTC, with milliseconds.
  public static func iso(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.string(from: date)
  }
}
