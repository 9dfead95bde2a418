import Foundation
import SixtyCalendar
import SixtyPlanning

/// When a play may start hosts, from its maintenance windows.
public enum MaintenanceWindows {
  /// The time after which no host of `play` may start, from its maintenance windows (the play's
  /// own and the organisation's; within each group one open window is enough). Nil when the play
  /// has no windows.
  /// - Throws: `RunFailure` `.aborted` when a required window is closed (naming when it opens
  ///   next), `.badInput` for a schedule that cannot be evaluated.
  public static func cutoff(_ play: PlayPlan, now: Date) throws(RunFailure) -> Date? {
    var cutoff: Date?
    let groups = [(play.policy.windows, "its"), (play.policy.organisationWindows, "the organisation's")]
    for (windows, owner) in groups where !windows.isEmpty {
      var best: Date?
      var nextOpening: (name: String, at: Date)?
      for window in windows {
        let place = window.location.map { "\($0): " } ?? ""
        let state: WindowState
        do {
          state = try WindowEvaluator.state(of: window, at: now)
        } catch {
          throw RunFailure("\(place)\(error.description).", status: .badInput)
        }
        if let limit = state.startCutoff, limit > now {
          best = max(best ?? limit, limit)
        } else if let next = state.nextOpening, nextOpening.map({ next < $0.at }) ?? true {
          nextOpening = (window.name, next)
        }
      }
      guard let best else {
        let names = windows.map { "'\($0.name)'" }.joined(separator: ", ")
        let when =
          nextOpening.map { " The next opening is '\($0.name)' at \($0.at.formatted(.iso8601))." } ?? ""
        throw RunFailure(
          "the play '\(play.name)' may start hosts only inside \(owner) maintenance window\(windows.count == 1 ? "" : "s") \(names), and none is open (or all are past their cutoff) now.\(when)",
          status: .aborted)
      }
      cutoff = min(cutoff ?? best, best)
    }
    return cutoff
  }

  /// Checks every play's windows before anything is pushed.
  public static func check(_ plan: Plan, now: Date) throws(RunFailure) {
    for play in plan.plays { _ = try cutoff(play, now: now) }
  }

  /// Each maintenance window's state now: open until when, or when it opens next.
  public static func states(_ plan: Plan, now: Date) -> String {
    var text = ""
    var seen = Set<String>()
    for play in plan.plays {
      for (window, owner) in play.policy.windows.map({ ($0, "play '\(play.name)'") })
        + play.policy.organisationWindows.map({ ($0, "organisation") })
      {
        let key = "\(owner)/\(window.name)"
        guard seen.insert(key).inserted else { continue }
        let local = ISO8601DateFormatter()
        local.timeZone = TimeZone(identifier: window.timeZone) ?? TimeZone(identifier: "UTC")!
        let line: String
        do {
          let state = try WindowEvaluator.state(of: window, at: now)
          if state.isOpen, let cutoff = state.startCutoff, let closes = state.closes {
            line =
              cutoff > now
              ? "open now; hosts may start until \(local.string(from: cutoff)), it closes at \(local.string(from: closes))"
              : "open, but past its cutoff (\(local.string(from: cutoff))); it closes at \(local.string(from: closes))"
          } else if let next = state.nextOpening {
            line = "closed; next opens \(local.string(from: next))"
          } else {
            line = "closed; no opening within a year"
          }
        } catch {
          line = "cannot be evaluated: \(error.description)"
        }
        if text.isEmpty {
          text = "\nMaintenance windows (now \(ISO8601DateFormatter().string(from: now))):\n"
        }
        text += "  \(window.name) (\(owner)): \(line)\n"
      }
    }
    return text
  }
}
