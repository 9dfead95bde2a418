import Foundation
import SixtyCore
import SixtyHistory

/// The one JSON encoding of a run and its hosts.
///
/// `sixty run --report` and `sixty runs report` write the report document (`RunReport.json()`).
/// `sixty runs show --format json`, `sixty runs list --format json` and job notifications write
/// the same document for a recorded run, with the history's own facts added: the run's `id`,
/// `duration_s`, `playbook_sha256`, `extra_var_names`, `pid`, `rerun_of`, `scheduled_for`, host
/// counts, a flat `hosts` array (each host with its `play` and `host` name) and `notifications`.
public enum RunDocument {
  /// The document of a recorded run with `hosts` (all of them, or a chosen few) and the
  /// notifications sent about it, ending with a newline.
  public static func json(
    run: RunRecord, plays: [PlayRecord], hosts: [HostRecord], notifications: [NotificationRecord] = [],
    shards: [ShardRecord] = []
  ) -> [UInt8] {
    var w = JSONWriter()
    write(run: run, plays: plays, hosts: hosts, notifications: notifications, shards: shards, to: &w)
    return w.bytes + [UInt8(ascii: "\n")]
  }

  /// The documents of recorded runs without their plays and hosts (`sixty runs list`), as an
  /// array, ending with a newline.
  public static func json(runs: [RunRecord]) -> [UInt8] {
    var w = JSONWriter()
    let iso = ISOTime()
    w.beginArray()
    for run in runs {
      let report = RunReport(run: run, plays: [], hosts: [])
      w.beginObject()
      writeFields(of: report, iso, to: &w)
      writeFields(of: run, iso, to: &w)
      w.endObject()
    }
    w.endArray()
    return w.bytes + [UInt8(ascii: "\n")]
  }

  /// Writes the document of a recorded run as one value (to embed it in a larger document).
  public static func write(
    run: RunRecord, plays: [PlayRecord], hosts: [HostRecord], notifications: [NotificationRecord] = [],
    shards: [ShardRecord] = [], to w: inout JSONWriter
  ) {
    let report = RunReport(run: run, plays: plays, hosts: hosts)
    let iso = ISOTime()
    w.beginObject()
    writeFields(of: report, iso, to: &w)
    writePlays(of: report, iso, to: &w)
    writeFields(of: run, iso, to: &w)
    w.key("hosts")
    w.beginArray()
    for host in hosts {
      w.beginObject()
      w.field("play", host.play)
      w.field("host", host.host)
      writeFields(of: host, recorded: true, iso, to: &w)
      w.endObject()
    }
    w.endArray()
    w.key("notifications")
    w.beginArray()
    for notification in notifications {
      w.beginObject()
      w.field("kind", notification.kind.rawValue)
      w.field("target", notification.target)
      w.field("outcome", notification.outcome.rawValue)
      w.field("attempts", notification.attempts)
      if let error = notification.error { w.field("error", error) }
      w.field("at", iso(notification.at))
      w.endObject()
    }
    w.endArray()
    if !shards.isEmpty {
      w.key("shard_states")
      w.beginArray()
      for shard in shards {
        w.beginObject()
        w.field("shard", shard.shard)
        w.field("status", shard.status.rawValue)
        if let code = shard.exitCode { w.field("exit_code", code) }
        if let message = shard.message { w.field("message", message) }
        w.field("started_by", shard.startedBy)
        w.field("pid", shard.pid)
        w.field("started", iso(shard.startedAt))
        if let finished = shard.finishedAt { w.field("finished", iso(finished)) }
        w.endObject()
      }
      w.endArray()
    }
    w.endObject()
  }

  /// The report document (`--report`).
  static func write(_ report: RunReport, to w: inout JSONWriter) {
    let iso = ISOTime()
    w.beginObject()
    writeFields(of: report, iso, to: &w)
    writePlays(of: report, iso, to: &w)
    w.endObject()
  }

  // MARK: - Parts

  /// Times as ISO 8601 with milliseconds, in UTC (one formatter per document: making one is slow).
  struct ISOTime {
    let formatter = ISO8601DateFormatter()
    init() { formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds] }
    func callAsFunction(_ date: Date) -> String { formatter.string(from: date) }
  }

  /// The run-level keys of the report, and `output` when there are plays to describe.
  static func writeFields(of report: RunReport, _ iso: ISOTime, to w: inout JSONWriter) {
    if let runID = report.runID { w.field("run_id", Int(runID)) }
    w.field("playbook", report.playbook)
    w.field("started", iso(report.started))
    if let finished = report.finished { w.field("finished", iso(finished)) }
    w.field("status", report.status.rawValue)
    if let exitCode = report.exitCode { w.field("exit_code", exitCode) }
    if let message = report.message { w.field("message", message) }
    if let inventory = report.inventory { w.field("inventory", inventory) }
    if let policy = report.policy { w.field("policy", policy) }
    if let limit = report.limit { w.field("limit", limit) }
    if let job = report.job { w.field("job", job) }
    if let trigger = report.trigger { w.field("trigger", trigger.rawValue) }
    if let startedBy = report.startedBy { w.field("started_by", startedBy) }
    if let keyFingerprint = report.keyFingerprint { w.field("key_fingerprint", keyFingerprint) }
    if let pushes = report.pushes {
      w.key("pushes")
      w.beginObject()
      w.field("mode", pushes.mode)
      w.field("key_type", pushes.keyType)
      w.field("key_type_reason", pushes.keyTypeReason)
      w.field("pacing", "adaptive")
      w.key("ceiling")
      if let ceiling = pushes.ceiling { w.value(ceiling) } else { w.null() }
      w.field("requests", pushes.requests)
      w.field("throttled", pushes.throttled)
      w.field("lowered", pushes.lowered)
      w.key("rate")
      if let rate = pushes.rate { w.value(rate) } else { w.null() }
      w.key("lowest_rate")
      if let rate = pushes.lowestRate { w.value(rate) } else { w.null() }
      w.field("measured_rate", pushes.measuredRate)
      w.field("text", pushes.pacingText)
      w.endObject()
    }
  }

  /// `output` and `plays`, each play with its hosts keyed by name.
  static func writePlays(of report: RunReport, _ iso: ISOTime, to w: inout JSONWriter) {
    w.field("output", report.outputIsTail ? "tail" : "complete")
    w.key("plays")
    w.beginArray()
    for play in report.plays {
      w.beginObject()
      w.field("name", play.name)
      w.field("outcome", play.outcome.rawValue)
      if let reason = play.reason { w.field("reason", reason) }
      w.field("key_ttl_seconds", play.keyTTL)
      if let concurrency = play.concurrency { w.field("concurrency", concurrency) }
      w.key("hosts")
      w.beginObject()
      for host in play.hosts {
        w.key(host.host)
        w.beginObject()
        writeFields(of: host, recorded: false, iso, to: &w)
        w.endObject()
      }
      w.endObject()
      w.endObject()
    }
    w.endArray()
  }

  /// What the history adds to the report's run-level keys.
  static func writeFields(of run: RunRecord, _ iso: ISOTime, to w: inout JSONWriter) {
    w.field("id", Int(run.id))
    if let duration = run.duration { w.field("duration_s", duration) }
    w.field("playbook_sha256", run.playbookSHA256)
    if let command = RecordedCommand(run) {
      w.field("command", strings: command.command)
      w.field("selector", command.selector)
    }
    w.field("extra_var_names", strings: run.extraVarNames)
    w.field("pid", run.pid)
    if let rerunOf = run.rerunOf { w.field("rerun_of", Int(rerunOf)) }
    if let scheduled = run.scheduledFor { w.field("scheduled_for", iso(scheduled)) }
    w.field("hosts_total", run.hostsTotal)
    w.field("hosts_ok", run.hostsOK)
    w.field("hosts_failed", run.hostsFailed)
    if let shards = run.shards {
      if let key = run.runKey { w.field("run_key", key) }
      w.field("shards", shards)
      w.field("shards_ended", run.shardsEnded)
    }
  }

  /// A host's keys (inside its object). `recorded` adds the history's names: the address even
  /// when empty, `push_to_auth_ms` whenever known, and each task's `finished`, `stdout_tail`
  /// and `stderr_tail`.
  static func writeFields(of host: HostRecord, recorded: Bool, _ iso: ISOTime, to w: inout JSONWriter) {
    w.field("status", host.status.rawValue)
    if let shard = host.shard { w.field("shard", shard) }
    if let message = host.message { w.field("message", message) }
    if recorded || !host.address.isEmpty { w.field("address", host.address) }
    w.field("user", host.user)
    w.field("reconnects", host.reconnects)
    w.field("pushes", strings: host.pushes.map { iso($0) })
    if let auth = host.authenticatedAt {
      w.field("authenticated", iso(auth))
      if let ms = host.pushToAuthMilliseconds { w.field("push_to_auth_ms", ms) }
    } else if recorded, let ms = host.pushToAuthMilliseconds {
      w.field("push_to_auth_ms", ms)
    }
    if let started = host.startedAt { w.field("started", iso(started)) }
    if let finished = host.finishedAt { w.field("finished", iso(finished)) }
    w.key("tasks")
    w.beginArray()
    for task in host.tasks {
      w.beginObject()
      w.field("name", task.name)
      w.field("status", task.status.rawValue)
      if task.status == .ok { w.field("exit", Int(task.exitStatus ?? 0)) }
      if let reason = task.reason { w.field("reason", reason) }
      w.field("attempts", task.attempts)
      if let started = task.startedAt { w.field("started", iso(started)) }
      if let ended = task.finishedAt {
        w.field("ended", iso(ended))
        if recorded { w.field("finished", iso(ended)) }
      }
      if let code = task.exitStatus { w.field("exit_status", Int(code)) }
      if task.startedAt != nil || task.stdoutTail != nil {
        w.field("stdout", task.stdoutTail ?? "")
        w.field("stderr", task.stderrTail ?? "")
      }
      if recorded {
        if let out = task.stdoutTail { w.field("stdout_tail", out) }
        if let err = task.stderrTail { w.field("stderr_tail", err) }
      }
      w.endObject()
    }
    w.endArray()
  }
}
