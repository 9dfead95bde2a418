import Foundation
import SixtyCore

/// One scheduled maintenance job from `jobs.yml`.
public struct Job: Sendable {
  public enum Overlap: String, Sendable, CaseIterable { case skip, queue }
  public enum CatchUp: String, Sendable, CaseIterable { case none, once }
  /// What the daemon does with this job's run when it is asked to stop.
  public enum Shutdown: String, Sendable, CaseIterable { case finish, abort }

  /// A notification sent when a run of the job ends.
  public struct Notification: Sendable, Equatable {
    public enum When: String, Sendable { case failure, success, always }
    public var when: When
    /// A webhook URL, literal or from an environment variable (read when sending).
    public var webhook: String?
    public var webhookEnv: String?
    /// A shell command that receives the run summary (JSON) on standard input.
    public var command: String?
    public var location: SourceLocation?

    public func applies(succeeded: Bool) -> Bool {
      switch when {
      case .always: true
      case .success: succeeded
      case .failure: !succeeded
      }
    }
  }

  public var name: String
  public var playbook: String
  public var inventory: String
  public var policy: String?
  public var schedule: Schedule
  public var timeZone: TimeZone
  /// How long after each fire hosts may still start (nil: no limit).
  public var windowDuration: TimeSpan?
  public var windowCutoff: TimeSpan
  public var overlap: Overlap
  public var catchUp: CatchUp
  public var enabled: Bool
  public var limit: String?
  public var shutdown: Shutdown = .finish
  public var notifications: [Notification] = []
  public var location: SourceLocation?
  /// Where the jobs file gives the playbook and the inventory, for diagnostics about them.
  public var playbookLocation: SourceLocation?
  public var inventoryLocation: SourceLocation?

  public var calendar: CronSchedule { CronSchedule(schedule, timeZone: timeZone) }
}

/// `jobs.yml`:
///
/// ```yaml
/// jobs:
///   nightly-cleanup:
///     playbook: playbooks/disk-cleanup.yml      # relative to jobs.yml
///     inventory: playbooks/inventory.yml
///     policy: playbooks/policy.yml              # optional
///     schedule: "0 3 * * *"                     # cron, @daily, cron(...) or rate(...)
///     timezone: Europe/Berlin                   # default UTC
///     window: {duration: 2h, cutoff: 30m}       # optional: hosts start only this long after the fire
///     overlap: skip                             # or queue
///     catch_up: once                            # or none
///     enabled: true
///     limit: role=web                           # optional host selector
///     shutdown: finish                          # or abort: what a stopping daemon does to a run
///     notify:
///       - {on: failure, webhook_env: OPS_WEBHOOK}
///       - {on: always, command: "logger -t sixty"}
/// ```
public enum JobsFile {
  /// Reads and checks the jobs file at `path`; a schedule that cannot fire after `now` is an error.
  public static func load(path: String, now: Date = Date()) -> ([Job]?, [Diagnostic]) {
    NodeReader.read(YAMLLoader.load(path: path), empty: .error("the jobs file '\(path)' is empty.", at: nil))
    {
      root, reader in
      parse(root, base: URL(fileURLWithPath: path).deletingLastPathComponent(), now: now, reader: &reader)
    }
  }

  /// The jobs of a jobs file whose relative paths are relative to `base`; nil when it has no jobs.
  static func parse(_ root: YAMLNode, base: URL, now: Date = Date(), reader: inout NodeReader) -> [Job]? {
    var jobs: [Job] = []
    guard let top = reader.mapping(root, "the jobs file", allowed: ["jobs"]) else {
      return nil
    }
    guard let jobsNode = top.first(where: { $0.key == "jobs" })?.value,
      let entries = reader.mapping(jobsNode, "'jobs'")
    else {
      if !reader.diagnostics.hasErrors {
        reader.error(
          "the jobs file has no 'jobs'; expected a mapping of job names to jobs.", at: root.location)
      }
      return nil
    }
    let allowed = [
      "playbook", "inventory", "policy", "schedule", "timezone", "window", "overlap", "catch_up", "enabled",
      "limit", "shutdown", "notify",
    ]
    for entry in entries {
      guard let fields = reader.mapping(entry.value, "job '\(entry.key)'", allowed: allowed) else { continue }
      var playbook: String?
      var inventory: String?
      var policy: String?
      var schedule: Schedule?
      var zone = TimeZone(identifier: "UTC")!
      var duration: TimeSpan?
      var cutoff = TimeSpan.seconds(0)
      var overlap = Job.Overlap.skip
      var catchUp = Job.CatchUp.none
      var enabled = true
      var limit: String?
      var shutdown = Job.Shutdown.finish
      var notifications: [Job.Notification] = []
      var playbookLocation: SourceLocation?
      var inventoryLocation: SourceLocation?
      var scheduleNode: YAMLNode?
      func resolve(_ text: String) -> String {
        text.hasPrefix("/") ? text : base.appendingPathComponent(text).standardized.path
      }
      for field in fields {
        let what = "'\(field.key)' of job '\(entry.key)'"
        switch field.key {
        case "playbook":
          playbook = reader.string(field.value, what).map(resolve)
          playbookLocation = field.value.location
        case "inventory":
          inventory = reader.string(field.value, what).map(resolve)
          inventoryLocation = field.value.location
        case "policy": policy = reader.string(field.value, what).map(resolve)
        case "schedule":
          if let text = reader.string(field.value, what) {
            do {
              schedule = try Schedule(parsing: text)
              scheduleNode = field.value
            } catch {
              reader.error(
                "the schedule of job '\(entry.key)': \(error.description)", at: field.value.location)
            }
          }
        case "timezone":
          zone =
            reader.string(field.value, what, as: TimeZone.init(identifier:)) {
              "'\($0)' is not an IANA time zone name; expected something like UTC or Europe/Berlin."
            } ?? zone
        case "window":
          guard let parts = reader.mapping(field.value, what, allowed: ["duration", "cutoff"]) else {
            continue
          }
          for part in parts {
            let span = reader.timeSpan(part.value, "'window.\(part.key)' of job '\(entry.key)'")
            if part.key == "duration" { duration = span } else if let span { cutoff = span }
          }
        case "overlap": overlap = rule(field.value, what, "an overlap rule", overlap, reader: &reader)
        case "catch_up": catchUp = rule(field.value, what, "a catch-up rule", catchUp, reader: &reader)
        case "limit":
          if let text = reader.string(field.value, what) {
            do {
              _ = try HostSelector(parsing: text)
              limit = text
            } catch {
              reader.error("the limit of job '\(entry.key)': \(error.message)", at: field.value.location)
            }
          }
        case "shutdown": shutdown = rule(field.value, what, "a shutdown rule", shutdown, reader: &reader)
        case "notify":
          notifications = notify(field.value, job: entry.key, reader: &reader)
        default: enabled = reader.bool(field.value, what) ?? enabled
        }
      }
      var missing: [String] = []
      if playbook == nil { missing.append("playbook") }
      if inventory == nil { missing.append("inventory") }
      if schedule == nil { missing.append("schedule") }
      if !missing.isEmpty {
        if !reader.diagnostics.hasErrors || schedule != nil
          || !fields.contains(where: { $0.key == "schedule" })
        {
          reader.error(
            "the job '\(entry.key)' has no \(missing.joined(separator: ", ")); expected playbook, inventory and schedule.",
            at: entry.keyLocation)
        }
        continue
      }
      if let schedule, let scheduleNode {
        let local = now.addingTimeInterval(Double(zone.secondsFromGMT(for: now)))
        if let reason = schedule.neverFires(after: local) {
          reader.error(
            "the schedule of job '\(entry.key)' can never fire: \(reason).", at: scheduleNode.location)
          continue
        }
      }
      if let duration, cutoff >= duration {
        reader.error(
          "the window cutoff of job '\(entry.key)' (\(cutoff)) is not shorter than its duration (\(duration)).",
          at: entry.keyLocation)
      }
      jobs.append(
        Job(
          name: entry.key, playbook: playbook!, inventory: inventory!, policy: policy, schedule: schedule!,
          timeZone: zone, windowDuration: duration, windowCutoff: cutoff, overlap: overlap, catchUp: catchUp,
          enabled: enabled, limit: limit, shutdown: shutdown, notifications: notifications,
          location: entry.keyLocation, playbookLocation: playbookLocation,
          inventoryLocation: inventoryLocation))
    }
    return jobs
  }

  /// One of a rule's two values (`Rule.allCases`, written "first or second"); else `current`,
  /// and an error naming the rule.
  static func rule<Rule: RawRepresentable<String> & CaseIterable>(
    _ node: YAMLNode, _ what: String, _ name: String, _ current: Rule, reader: inout NodeReader
  ) -> Rule {
    let expected = Rule.allCases.map(\.rawValue).joined(separator: " or ")
    return reader.string(node, what, as: Rule.init(rawValue:)) {
      "'\($0)' is not \(name); expected \(expected)."
    }
      ?? current
  }

  static func notify(_ node: YAMLNode, job: String, reader: inout NodeReader) -> [Job.Notification] {
    guard let items = reader.sequence(node, "'notify' of job '\(job)'") else { return [] }
    var result: [Job.Notification] = []
    for item in items {
      let what = "a notification of job '\(job)'"
      guard let fields = reader.mapping(item, what, allowed: ["on", "webhook", "webhook_env", "command"])
      else {
        continue
      }
      var notification = Job.Notification(when: .failure, location: item.location)
      for field in fields {
        switch field.key {
        case "on":
          notification.when =
            reader.string(field.value, "'on' of \(what)", as: Job.Notification.When.init(rawValue:)) {
              "'\($0)' is not a notification trigger; expected failure, success or always."
            } ?? notification.when
        case "webhook":
          notification.webhook = reader.string(
            field.value, "'webhook' of \(what)",
            where: { text in
              guard let url = URL(string: text) else { return false }
              return (url.scheme == "http" || url.scheme == "https") && url.host != nil
            }
          ) { "'\($0)' is not an http(s) URL; expected something like https://hooks.example.com/sixty." }
        case "webhook_env":
          notification.webhookEnv = reader.string(
            field.value, "'webhook_env' of \(what)",
            where: { text in
              !text.isEmpty && text.allSatisfy { $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }
            }
          ) { "'\($0)' is not an environment variable name; expected something like OPS_WEBHOOK." }
        default: notification.command = reader.string(field.value, "'command' of \(what)")
        }
      }
      let targets = [notification.webhook, notification.webhookEnv, notification.command].compactMap { $0 }
        .count
      if targets == 0 && !fields.contains(where: { ["webhook", "webhook_env", "command"].contains($0.key) }) {
        reader.error("\(what) has no target; expected webhook, webhook_env or command.", at: item.location)
      } else if targets == 0 {
        continue  // the bad target is reported already
      } else if notification.webhook != nil && notification.webhookEnv != nil {
        reader.error("\(what) has both webhook and webhook_env; give one.", at: item.location)
      } else {
        result.append(notification)
      }
    }
    return result
  }
}
