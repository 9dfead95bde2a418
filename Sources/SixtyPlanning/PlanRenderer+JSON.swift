import SixtyCore
import SixtyPlaybook
import SixtyPolicy

/// Renders plans as JSON. The shape is documented in the README and kept stable.
public enum PlanJSONRenderer {
  /// - Parameter extra: writes more fields at the end of the plan object (`plan --preflight`).
  public static func render(
    _ plan: Plan, pretty: Bool = true, adding extra: ((inout JSONWriter) -> Void)? = nil
  )
    -> [UInt8]
  {
    let hostCount = plan.plays.reduce(0) { $0 + $1.hosts.count }
    var w = JSONWriter(pretty: pretty, capacity: 4096 + hostCount * 512)
    w.beginObject()
    w.field("version", 1)
    w.field("playbook", plan.playbookPath)
    w.field("inventory", plan.inventoryPath)
    w.field("refused", plan.isRefused)
    // Run-wide views: batches of every play in run order, and each host's order across plays.
    w.key("batches")
    w.beginArray()
    for play in plan.plays {
      for batch in play.batches {
        w.beginArray()
        for i in batch { w.value(play.hosts[i].host.name) }
        w.endArray()
      }
    }
    w.endArray()
    var orders: [String: [String]] = [:]
    var hostOrder: [String] = []
    for play in plan.plays {
      for hostPlan in play.hosts where hostPlan.refusal == nil {
        if orders[hostPlan.host.name] == nil { hostOrder.append(hostPlan.host.name) }
        orders[hostPlan.host.name, default: []].append(contentsOf: hostPlan.order(in: play))
      }
    }
    w.key("hosts")
    w.beginObject()
    for name in hostOrder {
      w.key(name)
      w.beginObject()
      w.field("order", strings: orders[name]!)
      w.endObject()
    }
    w.endObject()
    w.key("policy")
    if let first = plan.plays.first { policy(first, into: &w) } else { w.null() }
    w.key("plays")
    w.beginArray()
    for play in plan.plays { self.play(play, into: &w) }
    w.endArray()
    w.field("refusals", objects: plan.refusals) { w, refusal in
      w.field("play", refusal.play)
      w.field("host", refusal.host)
      w.field("task", refusal.task)
      w.field("reason", refusal.reason)
    }
    w.key("diagnostics")
    diagnostics(plan.diagnostics, into: &w)
    extra?(&w)
    w.endObject()
    var bytes = w.bytes
    bytes.append(UInt8(ascii: "\n"))
    return bytes
  }

  public static func diagnostics(_ list: [Diagnostic], into w: inout JSONWriter) {
    w.objects(list) { w, d in
      w.field("severity", d.severity.rawValue)
      w.field("file", d.location?.file)
      if let location = d.location {
        w.field("line", location.line)
        w.field("column", location.column)
      }
      w.field("message", d.message)
    }
  }

  static func play(_ play: PlayPlan, into w: inout JSONWriter) {
    w.beginObject()
    w.field("name", play.name)
    w.field("selector", play.selector)
    w.key("policy")
    policy(play, into: &w)
    w.key("batches")
    w.beginArray()
    for batch in play.batches {
      w.beginArray()
      for i in batch { w.value(play.hosts[i].host.name) }
      w.endArray()
    }
    w.endArray()
    w.field("graph", objects: play.tasks.enumerated()) { w, item in
      let (i, task) = item
      w.field("name", task.name)
      w.field("kind", task.action.kind)
      w.field("needs", strings: play.graph.dependencies[i].map { play.tasks[$0].name })
      w.field("become", task.become)
      if let user = task.becomeUser { w.field("become_user", user) }
      w.key("timeout")
      w.value((task.timeout ?? play.policy.taskTimeout).seconds)
      w.field("retries", task.retries ?? play.policy.retries)
      w.field("retry_delay", (task.retryDelay ?? play.policy.retryDelay).seconds)
      w.key("ok_codes")
      w.beginArray()
      for code in task.okCodes { w.value(code) }
      w.endArray()
      w.field("on_failure", task.onFailure.rawValue)
      w.field("when", task.whenText)
      w.field("run_once", task.runOnce)
      w.field("location", task.location.description)
    }
    w.key("hosts")
    w.beginObject()
    for hostPlan in play.hosts {
      w.key(hostPlan.host.name)
      w.beginObject()
      let host = hostPlan.host
      w.field("address", host.address)
      w.field("port", host.port)
      w.field("user", hostPlan.user)
      w.field("instance_id", host.instanceID)
      w.field("zone", host.zone)
      if let batch = hostPlan.batch { w.field("batch", batch) } else { w.key("batch"); w.null() }
      w.field("refused", hostPlan.refusal)
      w.field("order", strings: hostPlan.order(in: play))
      w.key("push")
      if let batch = hostPlan.batch {
        w.beginObject()
        w.field("when", "slot")
        w.field("batch", batch)
        w.field("user", hostPlan.user)
        w.field("instance_id", host.instanceID ?? host.name)
        w.field("ttl", play.policy.keyTTL.seconds)
        w.field(
          "repush_after", Double(play.policy.keyTTL.milliseconds - play.policy.keyMargin.milliseconds) / 1000)
        w.endObject()
      } else {
        w.null()
      }
      w.field("tasks", objects: hostPlan.steps) { w, step in
        w.field("name", play.tasks[step.task].name)
        switch step.status {
        case .run: w.field("status", "run")
        case .skipped(let reason):
          w.field("status", "skipped")
          w.field("reason", reason)
        case .refused(let reason):
          w.field("status", "refused")
          w.field("reason", reason)
        }
        if let rendered = step.rendered { self.rendered(rendered, into: &w) }
      }
      w.endObject()
    }
    w.endObject()
    w.endObject()
  }

  static func rendered(_ task: RenderedTask, into w: inout JSONWriter) {
    switch task.action {
    case .command(let argv): w.field("argv", strings: argv)
    case .shell(let text): w.field("shell", text)
    case .script(let path, _): w.field("script", path)
    case .upload(let source, _, let destination, let mode):
      w.key("upload")
      w.beginObject()
      w.field("src", source)
      w.field("dest", destination)
      w.field("mode", mode)
      w.endObject()
    }
    if !task.env.isEmpty { w.field("env", strings: task.env) }
    if let cwd = task.cwd { w.field("cwd", cwd) }
  }

  static func policy(_ play: PlayPlan, into w: inout JSONWriter) {
    let p = play.policy
    let runnable = play.hosts.filter { $0.refusal == nil }.count
    w.beginObject()
    w.field("concurrency", p.concurrency)
    w.field("batches", strings: p.batches.map(\.description))
    w.key("batch_sizes")
    w.beginArray()
    for size in p.batchSizes(for: runnable) { w.value(size) }
    w.endArray()
    w.field("max_failures", p.maxFailures?.description ?? p.orgMaxFailures?.description)
    if let threshold = play.failureThreshold {
      w.field("failure_threshold", threshold)
    } else {
      w.key("failure_threshold"); w.null()
    }
    w.key("timeouts")
    w.beginObject()
    w.field("connect", p.connectTimeout.seconds)
    w.field("task", p.taskTimeout.seconds)
    w.key("run")
    if let run = p.runTimeout { w.value(run.seconds) } else { w.null() }
    w.endObject()
    w.field("retries", p.retries)
    w.field("retry_delay", p.retryDelay.seconds)
    w.key("push")
    w.beginObject()
    w.field("pacing", "adaptive")
    w.key("rate")
    if let rate = p.pushRate { w.value(rate) } else { w.null() }
    w.key("burst")
    if let rate = p.pushRate { w.value(p.pushBurst ?? PlanTextRenderer.defaultBurst(rate)) } else { w.null() }
    w.field("ttl", p.keyTTL.seconds)
    w.field("margin", p.keyMargin.seconds)
    w.key("key_type")
    if let type = p.keyType { w.value(type.rawValue) } else { w.null() }
    w.field("key_type_from", p.keyType == nil ? "endpoint" : "policy")
    w.key("mode")
    if let mode = p.loginMode { w.value(mode.rawValue) } else { w.null() }
    w.field("mode_from", p.loginMode == nil ? "endpoint" : "policy")
    w.endObject()
    w.field("host_parallelism", p.hostParallelism)
    w.field("host_key_checking", p.hostKeyPolicy.rawValue)
    w.field("host_lock", p.hostLock.rawValue)
    w.field("lock_timeout", p.lockTimeout.seconds)
    let windows = p.windows.map { ($0, "play") } + p.organisationWindows.map { ($0, "organisation") }
    w.field("windows", objects: windows) { w, item in
      let (window, source) = item
      w.field("name", window.name)
      w.field("schedule", window.schedule)
      w.field("duration", window.duration.seconds)
      w.field("cutoff", window.cutoff.seconds)
      w.field("timezone", window.timeZone)
      w.field("source", source)
    }
    w.field("deny_commands", objects: p.denyCommands) { w, rule in
      switch rule.pattern {
      case .literal(let text): w.field("literal", text)
      case .regex(let text): w.field("regex", text)
      }
      w.field("reason", rule.reason)
    }
    w.field("require_approval", strings: p.requireApproval.map(\.selector.text))
    w.endObject()
  }
}
