import Foundation
import SixtyPolicy

/// Whether a maintenance window is open, and until when hosts may start.
public struct WindowState: Sendable, Equatable {
  public var name: String
  /// When the current occurrence opened (nil when closed).
  public var opened: Date?
  /// When it closes.
  public var closes: Date?
  /// No host starts at or after this time (close − cutoff).
  public var startCutoff: Date?
  /// When it opens next (when closed).
  public var nextOpening: Date?

  public var isOpen: Bool { opened != nil }
}

public enum WindowEvaluator {
  public struct Failure: Error, Sendable, CustomStringConvertible {
    public var description: String
  }

  /// Evaluates `window` at `now`. Schedules are 5-field cron expressions or macros in the
  /// window's IANA time zone.
  public static func state(of window: MaintenanceWindow, at now: Date) throws(Failure) -> WindowState {
    guard let zone = TimeZone(identifier: window.timeZone) else {
      throw Failure(
        description:
          "the time zone '\(window.timeZone)' of window '\(window.name)' is not an IANA time zone name")
    }
    let parsed: Schedule
    do {
      parsed = try Schedule(parsing: window.schedule)
    } catch {
      throw Failure(description: "the schedule of window '\(window.name)': \(error.description)")
    }
    let schedule = CronSchedule(parsed, timeZone: zone)
    let duration = window.duration.seconds
    if let opened = schedule.previous(atOrBefore: now, limit: duration),
      now < opened.addingTimeInterval(duration)
    {
      let closes = opened.addingTimeInterval(duration)
      return WindowState(
        name: window.name, opened: opened, closes: closes,
        startCutoff: closes.addingTimeInterval(-window.cutoff.seconds),
        nextOpening: nil)
    }
    return WindowState(
      name: window.name, opened: nil, closes: nil, startCutoff: nil, nextOpening: schedule.next(after: now))
  }
}
